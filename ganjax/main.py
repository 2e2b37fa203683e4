"""``python -m ganjax.main --config=dcgan --workdir=DIR``: see `ganjax.cli.train`."""

from ganjax.cli import train

if __name__ == "__main__":
  train.run()
