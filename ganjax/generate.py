"""``python -m ganjax.generate --workdir RUN --num N --out DIR_OR_NPZ``: see
`ganjax.cli.generate`."""

from ganjax.cli import generate

if __name__ == "__main__":
  generate.run()
