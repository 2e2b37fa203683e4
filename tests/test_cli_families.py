"""One command-line run per config family on the code path GPUs and TPUs take.

With ``GANJAX_ONEDNN=0`` (CI's second pass) every convolution is XLA's, as on a GPU or TPU: a
DCGAN-family config, the WGAN-GP critic, the ResNet / BigGAN family and the classifier task each
train two steps from the command line, by config name, and write their checkpoint. With the
oneDNN convolutions the same configs are covered by test_cli.py, test_zoo_configs.py and
test_classify_cli.py, so these runs are skipped there.
"""

import os

import pytest

from tests.test_classify_cli import CLASSIFIER_FLAGS
from tests.test_cli import run_cli
from tests.tiny import tiny_flags

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("GANJAX_ONEDNN") != "0",
                       reason="the XLA-convolution pass (GANJAX_ONEDNN=0) runs these"),
]

FAMILIES = {
    "dcgan": tiny_flags("dcgan", num_train_steps=2),
    "wgan_gp": tiny_flags("wgan_gp", num_train_steps=2, n_critic=2),
    "wgan_gp_acgan": tiny_flags("wgan_gp_acgan", num_train_steps=2, n_critic=1),
    "biggan": tiny_flags("biggan", num_train_steps=2, n_critic=1),
    "classifier": [*CLASSIFIER_FLAGS, "--config.num_epochs=1"],
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_config_family_trains_on_xla_convolutions(tmp_path, name):
  result = run_cli(str(tmp_path), name, *FAMILIES[name], by_name=True)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "convolutions: XLA's on 1 cpu device (oneDNN: switched off by GANJAX_ONEDNN=0)" in \
      result.stderr
  assert os.listdir(tmp_path / "checkpoints")
