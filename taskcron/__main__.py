"""`python -m taskcron`: the same as the `taskcron` command."""

from taskcron.cli import main

if __name__ == "__main__":
    main()
