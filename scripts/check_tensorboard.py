"""Reads bottleneck's TensorBoard files with the tensorboard package (scripts/check-tensorboard.sh).

For each run directory (a sweep directory: each of its points): the event files load with
EventAccumulator, the training loss is one curve over strictly increasing steps (a resumed
run's restart drops what the stopped process logged past its checkpoint), the per-epoch
and test scalars and the report's images are there, and the projector plugin serves the
run's embedding through its HTTP routes: config, tensor, metadata rows and sprite. Exits 1 on the
first failure, naming the run and what is wrong.
"""

import os
import struct
import sys

import werkzeug.test
from tensorboard.backend.event_processing import data_provider, event_accumulator, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.projector import projector_plugin


def fail(run, why):
    print(f"FAIL {run}: {why}")
    sys.exit(1)


def run_dirs(paths):
    out = []
    for p in paths:
        p = os.path.abspath(p)
        if os.path.isfile(os.path.join(p, "sweep.toml")):
            out += sorted(os.path.join(p, d) for d in os.listdir(p) if os.path.isfile(os.path.join(p, d, "manifest.json")))
        else:
            out.append(p)
    return out


def check_events(run):
    tb = os.path.join(run, "tb")
    acc = event_accumulator.EventAccumulator(tb, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars, images = tags["scalars"], tags["images"]
    for tag in ["train/loss", "epoch", "epoch/train_loss", "epoch/lr"]:
        if tag not in scalars:
            fail(run, f"no scalar {tag!r} (has {sorted(scalars)})")
    loss = acc.Scalars("train/loss")
    steps = [e.step for e in loss]
    if steps != sorted(set(steps)) or steps[0] != 1:
        fail(run, f"train/loss steps are not 1, 2, ... without repeats: {steps[:5]} ... {steps[-5:]}")
    epochs = [e.value for e in acc.Scalars("epoch")]
    if epochs != [float(i + 1) for i in range(len(epochs))]:
        fail(run, f"epoch scalars {epochs}")
    test = sorted(t for t in scalars if t.startswith("test/"))
    if "test/test_mse" not in test:
        fail(run, f"no test/test_mse among {test}")
    if steps[-1] != acc.Scalars("test/test_mse")[0].step:
        fail(run, "the test metrics are not at the last training step")
    terms = sorted(t for t in scalars if t.startswith("train/") and t != "train/loss")
    recon = [t for t in images if t.startswith("report/reconstructions")]
    if not recon:
        fail(run, f"no reconstruction image (images: {images})")
    img = acc.Images(recon[0])[-1]
    if not img.encoded_image_string.startswith(b"\x89PNG") or img.width <= 0 or img.height <= 0:
        fail(run, f"{recon[0]} is not a PNG image")
    return len(steps), len(epochs), terms, test, images, (img.width, img.height)


def projector(logdir):
    """The projector plugin as TensorBoard serves it, on the multiplexer of `logdir`."""
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    ctx = base_plugin.TBContext(logdir=logdir, data_provider=provider, multiplexer=mux)
    plugin = projector_plugin.ProjectorPlugin(ctx)
    apps = plugin.get_plugin_apps()

    def get(route, **args):
        r = werkzeug.test.Client(apps[route]).get("/", query_string=args)
        if r.status_code != 200:
            raise RuntimeError(f"{route} {args}: HTTP {r.status_code}: {r.get_data(as_text=True)}")
        return r

    return get


def check_projector(get, logdir, run):
    name = os.path.relpath(os.path.join(run, "tb"), logdir)
    runs = get(projector_plugin.RUNS_ROUTE).get_json()
    if name not in runs:
        fail(run, f"the projector lists no run {name!r} (runs: {sorted(runs)})")
    config = get(projector_plugin.CONFIG_ROUTE, run=name).get_json()
    emb = config["embeddings"][0]
    rows, k = (int(v) for v in emb["tensorShape"])
    tensor = get(projector_plugin.TENSOR_ROUTE, run=name, name=emb["tensorName"]).get_data()
    if len(tensor) != rows * k * 4:
        fail(run, f"the tensor route served {len(tensor)} bytes for {rows}x{k} float32 codes")
    meta = get(projector_plugin.METADATA_ROUTE, run=name, name=emb["tensorName"]).get_data(as_text=True)
    meta = meta.rstrip("\n").split("\n")
    header, lines = meta[0].split("\t"), meta[1:]
    if len(lines) != rows:
        fail(run, f"{len(lines)} metadata rows for {rows} codes")
    if header[:3] != ["index", "label", "class"]:
        fail(run, f"metadata header {header}")
    sprite = None
    if "sprite" in emb:
        png = get(projector_plugin.SPRITE_IMAGE_ROUTE, run=name, name=emb["tensorName"]).get_data()
        w, h = struct.unpack(">II", png[16:24])
        dw, dh = (int(v) for v in emb["sprite"]["singleImageDim"])
        if not png.startswith(b"\x89PNG") or w % dw or h % dh or (w // dw) * (h // dh) < rows:
            fail(run, f"sprite {w}x{h} does not hold {rows} images of {dw}x{dh}")
        sprite = (w, h, dw, dh)
    return emb["tensorName"], (rows, k), header, sprite


def main():
    runs = run_dirs(sys.argv[1:])
    if not runs:
        fail("-", "no run directories given")
    logdir = os.path.commonpath([os.path.dirname(r) for r in runs])
    get = projector(logdir)
    for run in runs:
        steps, epochs, terms, test, images, size = check_events(run)
        name, shape, header, sprite = check_projector(get, logdir, run)
        print(f"ok {run}")
        print(f"   scalars: train/loss at {steps} steps, {epochs} epochs, terms {terms or '-'}, {len(test)} test metrics")
        print(f"   images: {len(images)} ({', '.join(sorted(images)[:4])}, ...), reconstructions {size[0]}x{size[1]}")
        print(f"   projector: {name!r}, tensor {shape[0]}x{shape[1]}, metadata {header}, sprite {sprite}")
    print(f"all {len(runs)} runs load in tensorboard")


if __name__ == "__main__":
    main()
