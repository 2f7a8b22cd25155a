"""The ``voxmill`` command line: thin commands that parse options, call one library function, render."""
