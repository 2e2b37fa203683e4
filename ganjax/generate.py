"""``python -m ganjax.generate --workdir RUN (--num N | --seeds 0-63) --out DIR|FILE.npz|FILE.png``
(``--class``, ``--truncation``, ``--interpolate``): see `ganjax.cli.generate`."""

from ganjax.cli import generate

if __name__ == "__main__":
  generate.run()
