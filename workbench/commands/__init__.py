"""Command modules of ``python -m workbench``: each registers its commands with
``workbench.cli.command``; ``workbench.cli`` imports every module here on start-up."""
