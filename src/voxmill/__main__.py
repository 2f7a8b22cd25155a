from voxmill.cli.main import run

run()
