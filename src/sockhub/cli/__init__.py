"""Terminal commands; ``sockhub.cli.main:main`` is the console script."""
