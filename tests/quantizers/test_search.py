"""The nearest-code search's CPU speed-ups change no result: the two-level argmin/argmax equals torch's
one-level reduction index for index (ties, NaN, infinities, signed zeros), the row tiles respect the
memory cap, and the search finds the float64 nearest code up to fp32 rounding."""
import pytest
import torch

from paper_repro.quantizers import nearest_code
from paper_repro.quantizers.nsvq import neg_scaled_distance_chunks
from paper_repro.quantizers.search import (
    CPU_TILE_BYTES, DEFAULT_CHUNK_BYTES, REDUCE_BLOCK, TILE_ROWS_MIN, WORKSPACE_MAX_BYTES, argmax_rows,
    argmin_rows, cpu_workspace, rows_per_chunk, search_rows,
)


def crafted(rows=40, width=8192, seed=0):
    """Rows that stress the reduction: random values, many exact ties, NaN in a block after the
    minimum and before it, +-inf, signed zeros, the extreme in the first / last column."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(rows, width, generator=g)
    d[1] = torch.randint(0, 3, (width,), generator=g).float()       # ties everywhere
    d[2] = 5.0
    d[2, [(width - 1) // 2, width - 2, 1]] = -1.0                   # tied minimum in three blocks
    d[3, width - 3] = float("nan")                                   # NaN after the minimum's block
    d[4, 2] = float("nan")
    d[4, width - 1] = float("nan")                                   # two NaNs: the first wins
    d[5, width // 3] = float("-inf")
    d[5, width // 3 + 1] = float("inf")
    d[6] = 0.0
    d[6, (3 * REDUCE_BLOCK + 1) % width] = -0.0                      # -0 == +0: still the first index
    d[7, 0] = -100.0
    d[8, -1] = -100.0
    d[9, :] = float("inf")
    d[10, -1] = 100.0
    d[11, 0] = 100.0
    return d


@pytest.mark.parametrize("width", [4 * REDUCE_BLOCK, 320, 8192])
def test_two_level_reduction_equals_torch_index_for_index(width):
    d = crafted(width=width)
    assert d.is_contiguous() and width % REDUCE_BLOCK == 0    # the two-level path, not the fallback
    assert torch.equal(argmin_rows(d), d.argmin(1))
    assert torch.equal(argmax_rows(d), d.argmax(1))
    assert int(argmin_rows(d)[2]) == 1 and int(argmax_rows(d)[10]) == width - 1
    assert int(argmin_rows(d)[4]) == 2 and int(argmax_rows(d)[4]) == 2   # NaN wins, the first, as in torch
    assert int(argmin_rows(d)[6]) == 0 and int(argmax_rows(d)[9]) == 0
    for block in (8, 32):                    # other block widths give the same indices
        assert torch.equal(argmin_rows(d, block), d.argmin(1))
        assert torch.equal(argmax_rows(d, block), d.argmax(1))


@pytest.mark.parametrize("width", [3 * REDUCE_BLOCK, 300, 7])
def test_narrow_odd_and_strided_inputs_fall_back_to_the_same_answer(width):
    d = crafted(rows=24, width=width, seed=3)
    assert torch.equal(argmin_rows(d), d.argmin(1))
    assert torch.equal(argmax_rows(d), d.argmax(1))
    wide = crafted(rows=REDUCE_BLOCK * 4, width=512, seed=4).t()   # not contiguous
    assert torch.equal(argmin_rows(wide), wide.argmin(1))
    assert torch.equal(argmax_rows(wide), wide.argmax(1))


def test_search_rows_is_cache_sized_on_cpu_and_capped_by_memory():
    k = 8192
    assert search_rows(k) == CPU_TILE_BYTES // (4 * k) == 64
    assert search_rows(k, chunk_bytes=4 * k * 10) == 10                  # the memory cap still rules
    assert search_rows(k, device="cuda") == rows_per_chunk(k, DEFAULT_CHUNK_BYTES) == 8192
    assert search_rows(262_144) == TILE_ROWS_MIN                          # never a GEMV-sized tile
    assert search_rows(1000) % TILE_ROWS_MIN == 0 and search_rows(1000) * 4000 <= CPU_TILE_BYTES
    assert search_rows(10) == CPU_TILE_BYTES // 40 // TILE_ROWS_MIN * TILE_ROWS_MIN


@pytest.mark.parametrize("k,d", [(8192, 64), (1024, 3), (320, 16)])
def test_nearest_code_finds_the_float64_nearest_up_to_fp32_rounding(k, d):
    g = torch.Generator().manual_seed(k + d)
    z = torch.randn(1000, d, generator=g)
    c = torch.randn(k, d, generator=g)
    idx, mins = nearest_code(z, c, return_distances=True)
    z64, c64 = z.double(), c.double()
    true = (z64.pow(2).sum(1, keepdim=True) - 2 * z64 @ c64.t() + c64.pow(2).sum(1)).clamp_min(0)
    best = true.min(1).values
    got = true.gather(1, idx.unsqueeze(1)).squeeze(1)
    # the chosen code is the nearest one, or one whose distance ties it to fp32 rounding
    assert torch.all(got - best <= 1e-5 * (1 + best)), float((got - best).max())
    assert (idx == true.argmin(1)).float().mean() > 0.99
    torch.testing.assert_close(mins.double(), got, rtol=1e-4, atol=1e-4)
    # a small memory cap changes the tiling, not the answer's quality
    idx_small = nearest_code(z, c, chunk_bytes=4 * k * 16)
    got_small = true.gather(1, idx_small.unsqueeze(1)).squeeze(1)
    assert torch.all(got_small - best <= 1e-5 * (1 + best))


def test_cpu_workspace_is_reused_grown_and_refused_off_cpu_or_above_its_cap():
    a = cpu_workspace("test_ws", 16, 64, "cpu")
    b = cpu_workspace("test_ws", 8, 64, "cpu")
    assert a.shape == (16, 64) and b.shape == (8, 64) and a.data_ptr() == b.data_ptr()
    other = cpu_workspace("test_ws_other", 16, 64, "cpu")
    assert other.data_ptr() != a.data_ptr()
    big = cpu_workspace("test_ws", 64, 64, "cpu")
    assert big.shape == (64, 64) and big.dtype == torch.float32
    assert cpu_workspace("test_ws", 16, 64, "cuda") is None                 # no CPU buffer for a GPU
    assert cpu_workspace("test_ws", WORKSPACE_MAX_BYTES // 4 + 1, 1, "cpu") is None


def test_nsvq_distance_blocks_are_the_dense_scaled_distances():
    g = torch.Generator().manual_seed(5)
    z, c = torch.randn(100, 4, generator=g), torch.randn(256, 4, generator=g)
    dense = -((z[:, None] - c[None]) ** 2).sum(-1) / 0.7
    seen = 0
    for start, stop, block in neg_scaled_distance_chunks(z, c, 0.7, chunk_bytes=4 * 256 * 30,
                                                         precision="fp32"):
        assert block.shape == (stop - start, 256) and stop - start <= 30
        torch.testing.assert_close(block, dense[start:stop], rtol=1e-5, atol=1e-5)
        seen += stop - start
    assert seen == 100
