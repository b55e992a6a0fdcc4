"""`python -m llmlite` runs the command line."""
from llmlite.cli import app

if __name__ == "__main__":
    app(prog_name="llmlite")
