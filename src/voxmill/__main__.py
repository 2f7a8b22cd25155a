import sys

try:
    from voxmill.cli.main import run
except KeyboardInterrupt:  # Ctrl-C while still importing: the same exit code as at any other moment
    sys.stderr.write("voxmill: interrupted\n")
    sys.exit(130)

run()
