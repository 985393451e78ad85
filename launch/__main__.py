"""`python -m launch`."""

from launch import main

main.run()
