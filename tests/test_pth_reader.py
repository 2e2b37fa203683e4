"""Reading torch.save'd state dicts without torch: identical arrays, no pickled code run."""

from __future__ import annotations

import collections
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from ganjax.errors import ConfigError
from ganjax.eval.pth_reader import read_state_dict
from tests.conftest import subprocess_env

FORMATS = pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])


def torch_arrays(torch, path):
  return {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}


def assert_identical(ours, ref):
  assert list(ours) == list(ref)
  for name, value in ref.items():
    assert ours[name].dtype == value.dtype, name
    assert ours[name].shape == value.shape, name
    assert np.array_equal(ours[name], value, equal_nan=value.dtype.kind in "fc"), name


def random_fid_inception(torch):
  """pytorch-fid's `fid_inception_v3` architecture with random weights (it downloads otherwise)."""
  inception = pytest.importorskip("pytorch_fid.inception", reason="pytorch-fid is not installed")
  torch.manual_seed(0)
  net = inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
  net.Mixed_5b = inception.FIDInceptionA(192, pool_features=32)
  net.Mixed_5c = inception.FIDInceptionA(256, pool_features=64)
  net.Mixed_5d = inception.FIDInceptionA(288, pool_features=64)
  net.Mixed_6b = inception.FIDInceptionC(768, channels_7x7=128)
  net.Mixed_6c = inception.FIDInceptionC(768, channels_7x7=160)
  net.Mixed_6d = inception.FIDInceptionC(768, channels_7x7=160)
  net.Mixed_6e = inception.FIDInceptionC(768, channels_7x7=192)
  net.Mixed_7b = inception.FIDInceptionE_1(1280)
  net.Mixed_7c = inception.FIDInceptionE_2(2048)
  with torch.no_grad():  # running statistics differ from their init values, as in real weights
    for module in net.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.running_mean.normal_()
        module.running_var.uniform_(0.5, 2.0)
        module.num_batches_tracked.fill_(12345)
  return net


@FORMATS
def test_pytorch_fid_inception_state_dict_is_read_bit_identically(tmp_path, zip_format):
  torch = pytest.importorskip("torch")
  state = random_fid_inception(torch).state_dict()
  path = tmp_path / "pt_inception.pth"
  torch.save(state, path, _use_new_zipfile_serialization=zip_format)
  ours = read_state_dict(path)
  ref = torch_arrays(torch, path)
  assert_identical(ours, ref)
  assert len(ref) > 400 and ref["fc.weight"].shape == (1008, 2048)
  assert ours["Mixed_7c.branch_pool.bn.num_batches_tracked"].dtype == np.int64


@FORMATS
def test_views_offsets_strides_and_dtypes(tmp_path, zip_format):
  torch = pytest.importorskip("torch")
  torch.manual_seed(1)
  t = torch.randn(5, 8)
  state = collections.OrderedDict([
      ("full", t),
      ("offset_strided", t[1:, ::2]),  # shares t's storage: offset 8, strides (8, 2)
      ("transposed", t.t()),
      ("column", t[:, 3]),
      ("expanded", torch.arange(4.0).expand(3, 4)),  # stride 0
      ("scalar", torch.tensor(7, dtype=torch.int64)),
      ("empty", torch.zeros(0, 3)),
      ("double", torch.randn(3, 2, dtype=torch.float64)[::2]),
      ("half", torch.randn(4, 4).half()[:, 1:]),
      ("int32", torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4)[1:]),
      ("int16", torch.arange(10, dtype=torch.int16)),
      ("int8", torch.arange(-5, 5, dtype=torch.int8)),
      ("uint8", torch.arange(250, 256, dtype=torch.uint8)),
      ("bool", torch.tensor([True, False, True])),
      ("complex", torch.randn(3, dtype=torch.complex64)),
      ("nan", torch.tensor([float("nan"), float("inf"), -0.0])),
  ])
  path = tmp_path / "views.pth"
  torch.save(state, path, _use_new_zipfile_serialization=zip_format)
  assert_identical(read_state_dict(path), torch_arrays(torch, path))


def test_bfloat16(tmp_path):
  torch = pytest.importorskip("torch")
  ml_dtypes = pytest.importorskip("ml_dtypes")
  value = torch.randn(3, 5).bfloat16()[:, ::2]
  path = tmp_path / "bf16.pth"
  torch.save({"w": value}, path)
  ours = read_state_dict(path)["w"]
  ref = value.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
  assert ours.dtype == ref.dtype and ours.shape == ref.shape
  assert np.array_equal(ours.view(np.int16), ref.view(np.int16))


class CreatesMarker:
  """Unpickling this calls `fn(arg)` (what a malicious checkpoint does)."""

  def __init__(self, fn, arg):
    self.fn, self.arg = fn, arg

  def __reduce__(self):
    return (self.fn, (self.arg,))


def refused(path, global_name, marker):
  with pytest.raises(ConfigError) as info:
    read_state_dict(path)
  message = str(info.value)
  assert "\n" not in message
  assert f"refusing the global {global_name}" in message
  assert not marker.exists()


@FORMATS
def test_pickled_callable_is_refused_and_never_runs(tmp_path, zip_format):
  torch = pytest.importorskip("torch")
  marker = tmp_path / "marker"
  path = tmp_path / "evil.pth"
  evil = CreatesMarker(os.system, f"touch {marker}")
  torch.save({"weight": torch.zeros(2), "evil": evil}, path,
             _use_new_zipfile_serialization=zip_format)
  refused(path, f"{os.system.__module__}.system", marker)


def test_hand_written_zip_and_plain_pickle_are_refused(tmp_path):
  marker = tmp_path / "marker"
  code = f"open({str(marker)!r}, 'w').close()"
  zip_path = tmp_path / "handmade.pth"
  with zipfile.ZipFile(zip_path, "w") as archive:
    archive.writestr("handmade/data.pkl", pickle.dumps(CreatesMarker(eval, code), protocol=4))
    archive.writestr("handmade/version", "3\n")
  refused(zip_path, "builtins.eval", marker)
  plain = tmp_path / "plain.pth"
  plain.write_bytes(pickle.dumps({"w": CreatesMarker(exec, code)}, protocol=0))
  refused(plain, "__builtin__.exec", marker)  # protocols < 3 name builtins as in Python 2
  # A global hidden inside an allowed call's arguments is refused as well.
  nested = tmp_path / "nested.pth"
  nested.write_bytes(pickle.dumps(collections.OrderedDict(w=CreatesMarker(eval, code))))
  refused(nested, "builtins.eval", marker)


def test_other_files_are_one_line_config_errors(tmp_path):
  cases = {"missing.pth": None, "text.pth": b"not a checkpoint\n",
           "number.pth": pickle.dumps(12), "empty.pth": b""}
  for name, content in cases.items():
    path = tmp_path / name
    if content is not None:
      path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
      read_state_dict(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value), name


def test_non_tensor_entries_are_refused(tmp_path):
  torch = pytest.importorskip("torch")
  path = tmp_path / "mixed.pth"
  torch.save({"w": torch.zeros(2), "epoch": 3}, path)
  with pytest.raises(ConfigError, match="'epoch' is not a tensor"):
    read_state_dict(path)


READ_WITHOUT_TORCH = """
import sys
from ganjax.eval.pth_reader import read_state_dict
state = read_state_dict(sys.argv[1])
assert "torch" not in sys.modules, "torch was imported"
print(sorted(state), state["w"].tolist())
"""


def test_reading_does_not_import_torch(tmp_path, repo_root):
  torch = pytest.importorskip("torch")
  path = tmp_path / "small.pth"
  torch.save({"w": torch.arange(3.0)}, path)
  out = subprocess.run([sys.executable, "-c", READ_WITHOUT_TORCH, str(path)], cwd=repo_root,
                       env=subprocess_env(), capture_output=True, text=True, timeout=300,
                       check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip() == "['w'] [0.0, 1.0, 2.0]"
