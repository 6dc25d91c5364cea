from lanco.cli import entry

entry()
