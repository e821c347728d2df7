#!/usr/bin/env python3
"""PyTorch half of scripts/bench-vs-pytorch.sh: trains bottleneck's dense, conv or VAE
Fashion-MNIST default in PyTorch (CPU) exactly as `bottleneck run` does, and times it.

Same models, data, optimiser and loop as experiments/fashion-{dense,conv,vae}.toml:
  - all 60,000 training images, pixels scaled to [0, 1], reshuffled every epoch,
    batches of 256 (the last, partial batch included);
  - AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01; MSE loss (the VAE:
    Bernoulli BCE with logits summed per image + KL to N(0, I), in nats per image, k = 16);
  - each step: forward, loss, backward, optimiser step, and the loss read back with
    .item() (bottleneck reads every batch's loss too, to check it is finite).

Only the training loop is timed, per epoch; the data is loaded into one float32 tensor
before that. The test MSE over the 10,000 test images (the VAE: of the decoded posterior
mean) is computed afterwards (not timed).
PyTorch stays at its defaults (no DataLoader, default init, default AdamW implementation);
--flush-denormal calls torch.set_flush_denormal(True) for a stricter comparison.

Human-readable lines go to stdout as it runs; the last line is one JSON object that the
shell script parses (samples_per_second and epoch_seconds per epoch, test_mse,
max_rss_mib, the torch version and build facts).

Usage: bench_pytorch.py --model dense|conv|vae [--epochs 1] [--batch-size 256] [--threads N]
                        [--data-dir /usr/share/datasets/fashion-mnist] [--seed 0]
"""

import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

# Peak RSS of the bare interpreter + torch (KiB -> MiB), before any data or model: the CUDA
# build from PyPI maps its CUDA libraries here, a few hundred MiB a CPU build does not have.
IMPORT_RSS_MIB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["dense", "conv", "vae"], required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="intra-op threads (torch.set_num_threads); inter-op threads are 1")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist",
                   help="folder with the Fashion-MNIST IDX files (gzip or raw)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latent-dim", type=int, default=None, help="default: 32, the VAE 16")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-batches", type=int, default=0,
                   help="stop each epoch after this many batches (0 = all); smoke tests only")
    p.add_argument("--device", default="cpu",
                   help="cpu, or cuda / cuda:N (scripts/gpu-smoke.sh): the model and both "
                        "splits go there once")
    p.add_argument("--flush-denormal", action="store_true",
                   help="torch.set_flush_denormal(True) (default: PyTorch's default, off)")
    return p.parse_args()


# ---------------------------------------------------------------------------------------
# Data: Fashion-MNIST IDX files, as Debian's dataset-fashion-mnist ships them.

def idx_path(data_dir, stem):
    """The gzip file if present, else the raw one (bottleneck reads both)."""
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    sys.exit(f"bench_pytorch: neither {stem}.gz nor {stem} in {data_dir}")


def read_idx_images(path):
    """An IDX3 file (magic 0x00000803, big-endian n, rows, cols, then u8 pixels)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x803:
        sys.exit(f"bench_pytorch: {path} is not an IDX image file (magic {magic:#x})")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def load_split(data_dir, prefix, model):
    """All images of a split as one float32 tensor in [0, 1]: [N, 784] for the dense
    models, [N, 1, 28, 28] for the conv model."""
    pixels = read_idx_images(idx_path(data_dir, f"{prefix}-images-idx3-ubyte"))
    xs = pixels.astype(np.float32)
    xs /= 255.0                                  # in place: one float32 copy at a time
    xs = torch.from_numpy(xs)
    return xs.unsqueeze(1) if model == "conv" else xs.reshape(len(xs), -1)


# ---------------------------------------------------------------------------------------
# Models: the same layers as bottleneck's configs/model/{dense,conv}.toml.

def dense_autoencoder(latent):
    """784-512-256-k, ReLU, linear code; mirrored decoder with a sigmoid output."""
    encoder = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(),
        nn.Linear(512, 256), nn.ReLU(),
        nn.Linear(256, latent),                      # the code: no activation
    )
    decoder = nn.Sequential(
        nn.Linear(latent, 256), nn.ReLU(),
        nn.Linear(256, 512), nn.ReLU(),
        nn.Linear(512, 784), nn.Sigmoid(),
    )
    return nn.Sequential(encoder, decoder)


def conv_autoencoder(latent):
    """1->32->64 stride-2 3x3 convs (28->14->7), flatten + linear to the code; decoder:
    linear + ReLU back to 64x7x7, mirrored stride-2 transposed convs (7->14->28)."""
    encoder = nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),    # -> 32x14x14
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),   # -> 64x7x7
        nn.Flatten(),                                           # -> 3136
        nn.Linear(64 * 7 * 7, latent),                          # the code
    )
    decoder = nn.Sequential(
        nn.Linear(latent, 64 * 7 * 7), nn.ReLU(),
        nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 14x14
        nn.ConvTranspose2d(32, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),  # 28x28
    )
    return nn.Sequential(encoder, decoder)


class Vae(nn.Module):
    """bottleneck's configs/model/vae.toml: 784-512-256 ReLU, one linear layer to (μ, log σ²)
    of k units each, z = μ + σ·ε, decoder k-256-512-784 emitting Bernoulli logits."""

    def __init__(self, latent):
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(),
            nn.Linear(512, 256), nn.ReLU(),
            nn.Linear(256, 2 * latent),                  # μ and log σ²
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, 256), nn.ReLU(),
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 784),                         # logits
        )

    def loss(self, x):
        """−ELBO per image: BCE with logits summed over the pixels + KL(q(z|x) ‖ N(0, I))."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = nn.functional.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum()
        return (recon + kl) / len(x)

    def forward(self, x):
        """The decoded posterior mean, σ(decoder(μ)), as bottleneck's test MSE uses it."""
        mu, _ = self.encoder(x).chunk(2, dim=1)
        return torch.sigmoid(self.decoder(mu))


def objective(model, batch):
    """The training loss of a batch: the VAE's −ELBO, else MSE."""
    if isinstance(model, Vae):
        return model.loss(batch)
    return nn.functional.mse_loss(model(batch), batch)


# ---------------------------------------------------------------------------------------

def train_epoch(model, opt, xs, batch_size, generator, max_batches):
    """One pass over a fresh permutation of xs. Returns (samples, seconds, mean loss);
    the clock covers batch gathering, forward, loss, backward, step and .item()."""
    model.train()
    n = len(xs)
    started = time.perf_counter()
    order = torch.randperm(n, generator=generator).to(xs.device)
    samples, loss_sum = 0, 0.0
    for b, start in enumerate(range(0, n, batch_size)):
        if max_batches and b >= max_batches:
            break
        batch = xs[order[start:start + batch_size]]
        loss = objective(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(batch)    # reading the loss syncs, as in bottleneck
        samples += len(batch)
    seconds = time.perf_counter() - started
    return samples, seconds, loss_sum / max(samples, 1)


@torch.no_grad()
def test_mse(model, xs, batch_size=1000):
    """Mean squared error per pixel over the whole test set (bottleneck's test_mse)."""
    model.eval()
    total = 0.0
    for start in range(0, len(xs), batch_size):
        batch = xs[start:start + batch_size]
        total += nn.functional.mse_loss(model(batch), batch).item() * len(batch)
    return total / len(xs)


def main():
    args = parse_args()
    # Threads first, before any parallel work: N intra-op threads, one inter-op thread.
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    flush = bool(args.flush_denormal and torch.set_flush_denormal(True))
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    train = load_split(args.data_dir, "train", args.model)
    test = load_split(args.data_dir, "t10k", args.model)
    print(f"data: {len(train)} train, {len(test)} test images ({time.perf_counter() - t0:.1f} s to load)",
          flush=True)

    device = torch.device(args.device)
    train, test = train.to(device), test.to(device)
    build = {"dense": dense_autoencoder, "conv": conv_autoencoder, "vae": Vae}[args.model]
    latent = args.latent_dim or (16 if args.model == "vae" else 32)
    model = build(latent).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=args.weight_decay)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.model}, {params:,} parameters; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, flush-denormal {'on' if flush else 'off'}", flush=True)

    generator = torch.Generator().manual_seed(args.seed)
    sps, secs = [], []
    for epoch in range(1, args.epochs + 1):
        samples, seconds, loss = train_epoch(model, opt, train, args.batch_size, generator,
                                             args.max_batches)
        sps.append(samples / seconds)
        secs.append(seconds)
        print(f"epoch {epoch}: loss {loss:.5f}, {seconds:.2f} s, {samples / seconds:.0f} samples/s",
              flush=True)

    mse = test_mse(model, test)
    # ru_maxrss is in KiB on Linux.
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"test MSE {mse:.5f}, peak RSS {rss_mib:.0f} MiB ({IMPORT_RSS_MIB:.0f} MiB after import torch)",
          flush=True)
    print(json.dumps({
        "side": "pytorch",
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "samples_per_second": sps,
        "epoch_seconds": secs,
        "test_mse": mse,
        "max_rss_mib": rss_mib,
        "import_rss_mib": IMPORT_RSS_MIB,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "flush_denormal": flush,
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "max_batches": args.max_batches,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }), flush=True)


if __name__ == "__main__":
    main()
