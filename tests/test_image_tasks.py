"""The image-text adapters (openclipart, datacomp) and their picture decoding, on fixture data
written here in the exact upstream layouts: a `dpkg -x` tree of openclipart-png/-svg, and
webdataset tar shards as DataComp's download writes them. One test loads the real openclipart
data when it is present (scripts/fetch_openclipart.sh)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from mixbench.tasks.datacomp import DataComp, split_member_name
from mixbench.tasks.openclipart import FETCH_SCRIPT, OpenClipart, name_caption, svg_metadata
from PIL import Image

import mixbench.data.images
from mixbench.data.images import ImageDecodeError, decode_image, load_images
from mixbench.task import TaskDataError
from mixbench.testing import check_task

S = 32
WHITE = np.array([255, 255, 255], dtype=np.uint8)
# The machine's own settings, read before any test changes them: the real-data test uses them.
REAL_ENV = {name: os.environ.get(name) for name in ("MIXBENCH_DATA", "MIXBENCH_OPENCLIPART")}


@pytest.fixture(autouse=True)
def _no_ambient_data(monkeypatch, tmp_path):
    """Adapters see only the data a test writes (conftest already gives each test its own cache)."""
    for env in ("MIXBENCH_OPENCLIPART", "MIXBENCH_DATACOMP"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("MIXBENCH_DATA", str(tmp_path / "data-root"))
    monkeypatch.setattr("mixbench.tasks.openclipart.SYSTEM_TREE", tmp_path / "no-system-install")


def one_line(message: str) -> bool:
    return "\n" not in message and message.strip() == message


def colour(i: int) -> tuple[int, int, int]:
    """A distinct opaque colour per index, so no two fixture pictures decode alike."""
    return (37 * i % 200 + 20, 91 * i % 200 + 20, 53 * i % 200 + 20)


def png_bytes(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **options)
    return out.getvalue()


def jpeg_bytes(i: int, size=(24, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour(i)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def transparent_rgba(size=(10, 10)) -> Image.Image:
    """Fully transparent except an opaque red centre pixel block."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (size[0] // 2 - 1, size[1] // 2 - 1, size[0] // 2 + 1, size[1] // 2 + 1))
    return image


def palette_with_transparency() -> tuple[Image.Image, dict]:
    """A P-mode picture whose index 0 (black in the palette) is transparent; index 1 is blue."""
    image = Image.new("P", (12, 12), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    image.paste(1, (4, 4, 8, 8))
    return image, {"transparency": 0}


# -- decoding one picture ------------------------------------------------------------------------

def test_transparency_becomes_white_and_shape_is_square():
    rgba = decode_image(("rgba.png", png_bytes(transparent_rgba())), S)
    assert rgba.shape == (S, S, 3) and rgba.dtype == np.uint8
    assert (rgba[0, 0] == WHITE).all() and (rgba[-1, -1] == WHITE).all()     # transparent → white, not black
    centre = rgba[S // 2 - 1:S // 2 + 1, S // 2 - 1:S // 2 + 1].reshape(-1, 3)
    assert centre[:, 0].min() > 200 and centre[:, 1].max() < 120            # the opaque red survives

    palette, options = palette_with_transparency()
    p = decode_image(("p.png", png_bytes(palette, **options)), S)
    assert (p[0, 0] == WHITE).all() and p[S // 2, S // 2, 2] > 200 and p[S // 2, S // 2, 0] < 60

    la = Image.new("LA", (8, 8), (0, 0))          # black but fully transparent
    assert (decode_image(("la.png", png_bytes(la)), S) == 255).all()
    grey = decode_image(("l.png", png_bytes(Image.new("L", (8, 8), 100))), S)
    assert (grey == 100).all()


def test_other_modes_and_aspect(tmp_path):
    wide = decode_image(("wide.png", png_bytes(Image.new("RGB", (40, 20), (0, 128, 0)))), S)
    assert (wide[0] == WHITE).all() and (wide[-1] == WHITE).all()         # padded above and below with white
    assert (wide[S // 2] == [0, 128, 0]).all()                              # the picture fills the width
    sixteen = Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16))       # 16-bit grey, full white
    assert (decode_image(("i16.png", png_bytes(sixteen)), S) == 255).all()
    half = Image.fromarray(np.full((6, 6), 32896, dtype=np.uint16))
    assert abs(int(decode_image(("half.png", png_bytes(half)), S)[0, 0, 0]) - 128) <= 1   # scaled, not clipped
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(cmyk, format="JPEG")
    assert decode_image(("c.jpg", cmyk.getvalue()), S).min() > 240         # CMYK "no ink" is white
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes(3, size=(300, 300)))
    assert decode_image(path, S).shape == (S, S, 3)


def test_corrupt_picture_names_the_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(png_bytes(Image.new("RGB", (30, 30), (1, 2, 3)))[:60])    # cut inside the data
    with pytest.raises(ImageDecodeError, match="broken.png") as caught:
        decode_image(path, S)
    assert one_line(str(caught.value))
    with pytest.raises(ImageDecodeError, match="x.jpg"):
        decode_image(("x.jpg", b"not an image at all"), S)


def test_load_images_skips_bad_ones_and_refuses_too_many(tmp_path, caplog):
    blobs = [(f"p{i}.png", png_bytes(Image.new("RGB", (5, 5), colour(i)))) for i in range(30)]
    blobs[7] = ("p7.png", b"garbage")
    with caplog.at_level(logging.WARNING):
        decoded = load_images(blobs, S, what="fixture")
    assert list(decoded.index) == [i for i in range(30) if i != 7] and decoded.images.shape == (29, S, S, 3)
    assert "p7.png" in caplog.text and "fixture" in caplog.text
    blobs[8] = ("p8.png", b"more garbage")      # 2 of 30: over the tolerated max(1, 5 %)
    with pytest.raises(TaskDataError, match="2 of 30 images") as caught:
        load_images(blobs, S, what="fixture")
    assert one_line(str(caught.value))


# -- openclipart ---------------------------------------------------------------------------------

DOMAINS = ("animals", "food", "shapes")
PER_DOMAIN = 24
VERSION_LINE = "openclipart (1:0.18+dfsg-19) unstable; urgency=medium\n\n  * QA upload\n"


def svg_text(title: str | None = None, keywords=(), creator="Some Author") -> str:
    """An SVG with the metadata block openclipart 0.18's files carry (cc:Work, agents with titles)."""
    title_xml = f"<dc:title>{title}</dc:title>" if title is not None else ""
    bag = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:cc="http://web.resource.org/cc/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
     width="10" height="10">
  <metadata>
    <rdf:RDF>
      <cc:Work rdf:about="">
        {title_xml}
        <dc:description></dc:description>
        <dc:subject><rdf:Bag>{bag}</rdf:Bag></dc:subject>
        <dc:publisher><cc:Agent rdf:about="http://www.openclipart.org/"><dc:title>Open Clip Art Library</dc:title>
        </cc:Agent></dc:publisher>
        <dc:creator><cc:Agent><dc:title>{creator}</dc:title></cc:Agent></dc:creator>
        <cc:license rdf:resource="http://web.resource.org/cc/PublicDomain"/>
      </cc:Work>
    </rdf:RDF>
  </metadata>
  <rect x="0" y="0" width="10" height="10" fill="#ff0000"/>
</svg>
"""


def picture(kind: int, i: int) -> tuple[Image.Image, dict]:
    """Fixture pictures cycle through the modes the real tree has: RGBA, P+transparency, LA, RGB, L."""
    c = colour(i)
    if kind == 0:
        image = Image.new("RGBA", (14, 10), (0, 0, 0, 0))
        image.paste(c + (255,), (2, 2, 12, 8))
        return image, {}
    if kind == 1:
        image = Image.new("P", (10, 10), 0)
        image.putpalette([0, 0, 0, *c] + [0, 0, 0] * 254)
        image.paste(1, (2, 2, 8, 8))
        return image, {"transparency": 0}
    if kind == 2:
        return Image.new("LA", (9, 9), (i % 250, 255)), {}
    if kind == 3:
        return Image.new("RGB", (12, 16), c), {}
    return Image.new("L", (10, 10), (7 * i) % 250), {}


@pytest.fixture
def clipart_root(tmp_path) -> Path:
    """`dpkg -x` of openclipart-png and openclipart-svg: usr/share/openclipart/{png,svg}/<domain>/...,
    with the Debian changelogs; at $MIXBENCH_DATA/openclipart, where the task looks by default."""
    root = tmp_path / "data-root" / "openclipart"
    tree = root / "usr" / "share" / "openclipart"
    n = 0
    for domain in DOMAINS:
        for i in range(PER_DOMAIN):
            relative = Path(domain) / ("sub" if i % 3 == 0 else "") / f"{domain}_item_{i:02d}.png"
            image, options = picture(n % 5, n)
            (tree / "png" / relative).parent.mkdir(parents=True, exist_ok=True)
            (tree / "png" / relative).write_bytes(png_bytes(image, **options))
            svg = (tree / "svg" / relative).with_suffix(".svg")
            svg.parent.mkdir(parents=True, exist_ok=True)
            svg.write_text(svg_text(title=f"{domain} picture {i}"), encoding="utf-8")
            n += 1
    svg = tree / "svg"
    (svg / "food" / "food_item_01.svg").write_text(svg_text(None, keywords=("apple", "fruit")), encoding="utf-8")
    (svg / "food" / "food_item_02.svg").write_text(svg_text("  ", keywords=("pear",)), encoding="utf-8")
    (svg / "food" / "food_item_04.svg").write_text(svg_text("cut short")[:200], encoding="utf-8")   # broken XML
    (svg / "food" / "food_item_05.svg").write_text("<svg><metadata>not xml &", encoding="utf-8")
    (svg / "food" / "food_item_07.svg").unlink()                                        # no SVG at all
    # A Debian link: the same picture (and its SVG) filed under a second folder.
    os.symlink("../animals/animals_item_01.png", tree / "png" / "shapes" / "linked_item_01.png")
    os.symlink("../animals/animals_item_01.svg", tree / "svg" / "shapes" / "linked_item_01.svg")
    for package in ("openclipart-png", "openclipart-svg"):
        doc = root / "usr" / "share" / "doc" / package
        doc.mkdir(parents=True)
        with gzip.open(doc / "changelog.Debian.gz", "wt") as f:
            f.write(VERSION_LINE)
    return root


KEEP_ALL = {"train_fraction": 0.95, "eval_fraction": 0.05}   # a split that holds nothing back


def by_caption(data) -> dict:
    return {e.response: e for e in data.train + data.eval}


def test_openclipart_domains_captions_and_images(clipart_root):
    task = OpenClipart()
    assert task.status() == "ready"
    info = task.info()
    assert info.modality == "image-text" and info.original_domains == 3 and info.version == "debian-1:0.18+dfsg-19"
    assert task.load().domains == DOMAINS
    data = OpenClipart(**KEEP_ALL).load()
    captions = by_caption(data)
    assert captions["animals picture 5"].domain == "animals"
    assert "Some Author" not in captions and "Open Clip Art Library" not in captions   # agents' titles ignored
    assert captions["apple, fruit"].domain == "food"             # no title: the keywords
    assert "pear" in captions                                    # a blank title counts as none
    assert "food item" in captions                               # broken SVGs and the missing one: the file name
    assert sum(e.response == "food item" for e in data.train + data.eval) <= 3
    for e in data.train + data.eval:
        assert e.prompt == "" and e.image.shape == (S, S, 3) and e.image.dtype == np.uint8
    rgba = captions["animals picture 0"].image                   # RGBA on a transparent canvas
    assert (rgba[0, 0] == WHITE).all() and not (rgba[S // 2, S // 2] == WHITE).all()
    palette = captions["animals picture 1"].image                # P with a transparent index
    assert palette[0, 0].min() >= 250                            # white, give or take the filter's ringing
    assert np.abs(palette[S // 2, S // 2].astype(int) - colour(1)).max() <= 2


def test_openclipart_split_links_and_determinism(clipart_root):
    data = OpenClipart().load()
    # 24 per domain: 22 train / 1 eval / 1 held back; the Debian link is not a second example.
    assert list(data.sizes("train")) == [22, 22, 22] and list(data.sizes("eval")) == [1, 1, 1]
    everything = OpenClipart(**KEEP_ALL).load()
    assert sum(e.response == "animals picture 1" for e in everything.train + everything.eval) == 1
    assert by_caption(everything)["animals picture 1"].domain == "animals"      # the real file's folder
    again = OpenClipart().load()
    assert [e.response for e in again.train] == [e.response for e in data.train]
    assert [e.response for e in again.eval] == [e.response for e in data.eval]
    other = OpenClipart(split_seed=1).load()
    assert [e.response for e in other.eval] != [e.response for e in data.eval]


def test_openclipart_cap_per_domain(clipart_root):
    capped = OpenClipart(max_per_domain=10).load()
    assert list(capped.sizes("train")) == [9, 9, 9] and list(capped.sizes("eval")) == [1, 1, 1]
    assert [e.response for e in OpenClipart(max_per_domain=10).load().train] == [e.response for e in capped.train]


def assert_loads_again_from_the_cache(task_cls, first, monkeypatch):
    """A second load of the same pictures decodes none of them and gives the same examples.
    Decoding stays forbidden afterwards."""
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds these pictures")

    monkeypatch.setattr(mixbench.data.images, "decode_image", no_decoding)
    second = task_cls().load()
    assert [e.response for e in second.train] == [e.response for e in first.train]
    assert all((a.image == b.image).all() for a, b in zip(first.train, second.train))


def test_openclipart_second_load_comes_from_the_cache(clipart_root, tmp_path, monkeypatch):
    first = OpenClipart().load()
    cached = list((tmp_path / "cache" / "images").rglob("*.npz"))
    assert len(cached) == 1 and cached[0].parent.name.startswith("openclipart-debian-1_0.18+dfsg-19")

    assert_loads_again_from_the_cache(OpenClipart, first, monkeypatch)
    with pytest.raises(AssertionError, match="decoded although"):
        OpenClipart(max_per_domain=5).load()      # other pictures: another cache entry


def test_openclipart_bad_pictures(clipart_root, caplog):
    png = clipart_root / "usr" / "share" / "openclipart" / "png"
    broken = png / "shapes" / "shapes_item_04.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with caplog.at_level(logging.WARNING):
        data = OpenClipart().load()
    assert "shapes_item_04.png" in caplog.text
    assert "shapes picture 4" not in by_caption(OpenClipart(**KEEP_ALL).load())
    assert list(data.sizes("train")) == [22, 22, 21] and list(data.sizes("eval")) == [1, 1, 1]
    for name in ("shapes_item_05.png", "shapes_item_07.png", "food_item_10.png", "animals_item_11.png"):
        (png / name.split("_")[0] / name).write_bytes(b"not a png")
    with pytest.raises(TaskDataError, match="5 of 72 images") as caught:
        OpenClipart().load()
    assert one_line(str(caught.value))


def test_openclipart_missing_data_and_version_fallback(tmp_path, monkeypatch):
    task = OpenClipart()
    status = task.status()
    assert status.startswith("missing: run ") and FETCH_SCRIPT in status and one_line(status)
    assert task.info().version == "not-available"
    with pytest.raises(TaskDataError, match="fetch_openclipart.sh") as caught:
        task.load()
    assert one_line(str(caught.value))
    # a bare png/ + svg/ folder (no Debian changelog), found through the environment variable
    tree = tmp_path / "bare"
    (tree / "png" / "animals").mkdir(parents=True)
    (tree / "png" / "animals" / "cat_01.png").write_bytes(png_bytes(Image.new("RGB", (4, 4))))
    monkeypatch.setenv("MIXBENCH_OPENCLIPART", str(tree))
    assert OpenClipart().status() == "ready" and OpenClipart().info().version.startswith("files-")


def test_svg_metadata_and_file_names(tmp_path):
    svg = tmp_path / "a.svg"
    svg.write_text(svg_text("  A   title  ", keywords=("k1", "k2"), creator="The Author"), encoding="utf-8")
    assert svg_metadata(svg) == ("A title", ["k1", "k2"])
    svg.write_text(svg_text(None, keywords=("k1",))[:150], encoding="utf-8")   # cut before the metadata
    assert svg_metadata(svg) == ("", [])
    assert svg_metadata(tmp_path / "absent.svg") == ("", [])
    assert name_caption("barattolo_di_pillole_arc_01") == "barattolo di pillole arc"
    assert name_caption("tangram-erwan_02") == "tangram erwan" and name_caption("01") == "01"


@pytest.fixture
def real_openclipart(monkeypatch) -> OpenClipart:
    """The real Debian packages, found the way the task finds them (the machine's own environment,
    not the tests'), on a small per-domain cap; skips when they are not here."""
    for name, value in REAL_ENV.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr("mixbench.tasks.openclipart.SYSTEM_TREE", Path("/usr/share/openclipart"))
    task = OpenClipart(max_per_domain=12)
    if task.status() != "ready":
        pytest.skip(f"openclipart data not found at {task._location()}: run {FETCH_SCRIPT}")
    return task


def test_openclipart_real_data(real_openclipart):
    task = real_openclipart
    info = task.info()
    assert info.version.startswith("debian-") and info.original_domains == 22
    data = task.load()
    assert len(data.domains) == 22 and "animals" in data.domains and "signs_and_symbols" in data.domains
    assert all(e.response.strip() and e.image.shape == (S, S, 3) for e in data.train + data.eval)
    assert len({e.response for e in data.train}) > len(data.train) // 3   # real titles, not one template


# -- datacomp ------------------------------------------------------------------------------------

def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples: list[dict]) -> Path:
    """A webdataset shard: per sample, its members in order (as img2dataset writes them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            for extension, data in sample["members"]:
                add_member(tar, f"{sample['key']}.{extension}", data)
    return path


def sample(key: str, i: int, *, txt: str | None = "default", json_caption: str | None = "from json",
           image: bytes | None = None, image_ext="jpg") -> dict:
    members = []
    if image is not False:
        members.append((image_ext, image if image is not None else jpeg_bytes(i)))
    if txt is not None:
        members.append(("txt", (f"a photo number {i}" if txt == "default" else txt).encode()))
    record = {"uid": f"{i:032x}", "key": key, "status": "success"}
    if json_caption is not None:
        record["caption"] = f"{json_caption} {i}"
    members.append(("json", json.dumps(record).encode()))
    return {"key": key, "members": members}


def good_samples(shard: int, n: int) -> list[dict]:
    return [sample(f"{shard:05d}{i:04d}", shard * 1000 + i) for i in range(n)]


@pytest.fixture
def datacomp_dir(tmp_path) -> Path:
    """Two shards at $MIXBENCH_DATA/datacomp; shard 0 holds the odd cases."""
    folder = tmp_path / "data-root" / "datacomp"
    odd = good_samples(0, 40)       # 2 bad samples of 40 are tolerated (5 %)
    odd[1] = sample("000000001", 1, txt=None, json_caption="json only")                   # caption from json
    odd[2] = sample("000000002", 2, image=png_bytes(transparent_rgba()), image_ext="png")  # a transparent PNG
    odd[3] = sample("000000003", 3, image=b"\xff\xd8\xff\xe0 not really a jpeg")           # corrupt image
    odd[4] = sample("000000004", 4, txt=None, json_caption=None)                           # no caption
    odd[5] = {"key": "000000005", "members": [("txt", b"caption without a picture")]}       # no image
    write_shard(folder / "shard-00000.tar", odd)
    write_shard(folder / "shard-00001.tar", good_samples(1, 40))
    return folder


def everything(**options) -> DataComp:
    """A DataComp whose split holds back nothing: every sample read is in train or eval."""
    return DataComp(train_fraction=0.95, eval_fraction=0.05, **options)


def all_captions(data) -> set[str]:
    return {e.response for e in data.train + data.eval}


def test_datacomp_examples_captions_and_images(datacomp_dir, caplog):
    task = DataComp()
    assert task.status() == "ready"
    info = task.info()
    assert info.modality == "image-text" and info.original_domains == 1 and "--domains regroup" in info.description
    assert info.version.startswith("sha-")
    with caplog.at_level(logging.WARNING):
        data = task.load()
    assert data.domains == ("datacomp",)
    assert 60 < len(data.train) < 77 and data.eval and len(data.train) + len(data.eval) < 77
    for e in data.train + data.eval:
        assert e.prompt == "" and e.image.shape == (S, S, 3) and e.image.dtype == np.uint8
    for key, why in (("000000003.jpg", "image"), ("000000004", "no caption"), ("000000005", "no image")):
        line = next(r.getMessage() for r in caplog.records if key in r.getMessage())
        assert "shard-00000.tar" in line and why in line
    full = everything().load()
    captions = {e.response: e for e in full.train + full.eval}
    assert len(captions) == 80 - 3
    assert "a photo number 10" in captions and "from json 10" not in captions   # .txt wins over .json
    assert "json only 1" in captions
    assert (captions["a photo number 2"].image[0, 0] == WHITE).all()          # a transparent PNG, over white


def test_datacomp_split_is_by_key_and_stable(datacomp_dir):
    first = DataComp().load()
    second = DataComp().load()
    assert [e.response for e in first.eval] == [e.response for e in second.eval]
    write_shard(datacomp_dir / "shard-00002.tar", good_samples(2, 30))
    grown = DataComp().load()
    assert {e.response for e in first.train} <= {e.response for e in grown.train}   # a new shard moves no sample
    assert {e.response for e in first.eval} <= {e.response for e in grown.eval}
    assert [e.response for e in DataComp(split_seed=3).load().train] != [e.response for e in first.train]
    # the first 20 samples with a picture and a caption; one picture does not decode
    assert len(all_captions(everything(max_samples=20).load())) == 20 - 1


def test_datacomp_cache(datacomp_dir, tmp_path, monkeypatch):
    first = DataComp().load()
    assert list((tmp_path / "cache" / "images").rglob("*.npz"))

    assert_loads_again_from_the_cache(DataComp, first, monkeypatch)


def member_offsets(path: Path) -> list[int]:
    with tarfile.open(path) as tar:
        return [m.offset for m in tar]


def test_datacomp_bad_shards(datacomp_dir, caplog):
    shard = datacomp_dir / "shard-00001.tar"
    full = shard.read_bytes()
    shard.write_bytes(full[:member_offsets(shard)[15] + 700])    # cut inside sample 5's image
    with caplog.at_level(logging.WARNING):
        data = everything().load()
    assert "shard-00001.tar" in caplog.text and "truncated" in caplog.text
    assert {f"a photo number {1000 + i}" for i in range(5)} <= all_captions(data)      # the samples before it
    assert "a photo number 1005" not in all_captions(data)
    shard.write_bytes(full)
    shard.write_bytes(full[:member_offsets(shard)[15]])   # cut between members: tarfile alone would not notice
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        data = everything().load()
    assert "shard-00001.tar" in caplog.text and "end-of-archive" in caplog.text
    assert "a photo number 1004" in all_captions(data)
    (datacomp_dir / "shard-00003.tar").write_bytes(b"<html>404 not found</html>" * 40)
    with pytest.raises(TaskDataError, match="shard-00003.tar is not a tar archive") as caught:
        DataComp().load()
    assert one_line(str(caught.value))


def test_datacomp_too_many_bad_samples(tmp_path):
    folder = tmp_path / "data-root" / "datacomp"
    samples = good_samples(0, 10)
    for i in (2, 5, 7):
        samples[i] = sample(f"00000{i:04d}", i, image=b"junk")
    write_shard(folder / "shard-00000.tar", samples)
    with pytest.raises(TaskDataError, match="3 of 10 images") as caught:
        DataComp().load()
    assert one_line(str(caught.value))
    write_shard(folder / "shard-00000.tar", [sample(f"{i:09d}", i, txt=None, json_caption=None) for i in range(10)])
    with pytest.raises(TaskDataError, match="10 of 10 samples"):
        DataComp().load()


def test_datacomp_missing_data():
    task = DataComp()
    status = task.status()
    assert status.startswith("missing: put ") and "MIXBENCH_DATACOMP" in status and one_line(status)
    with pytest.raises(TaskDataError, match="datacomp data is missing") as caught:
        task.load()
    assert one_line(str(caught.value))


def test_member_names():
    assert split_member_name("000012345.jpg") == ("000012345", "jpg")
    assert split_member_name("part/000012345.JSON") == ("part/000012345", "json")
    assert split_member_name("a.b.txt") == ("a", "b.txt")


# -- both, through the conformance kit -----------------------------------------------------------

def test_conformance(clipart_root, datacomp_dir):
    check_task(OpenClipart())
    check_task(DataComp())


@pytest.mark.slow
def test_rnb_trains_on_real_openclipart_regrouped(real_openclipart):
    """The acceptance run on the real packages, small: regroup the captions, balance, score retrieval."""
    from mixbench.algorithms.rnb import RnB
    from mixbench.embedders.tfidf import Tfidf

    from mixbench.engine import train
    from mixbench.regroup import apply, regroup

    task = real_openclipart
    original = task.load()
    data = apply(original, regroup(original, task.info(), Tfidf(dim=32), [6], seed=0))
    history = train(data, RnB(), task.budget.override(steps=20, steps_per_round=10, batch_size=32, eval_per_domain=8),
                    progress=False)
    assert len(history.train_losses) == 20 and np.all(np.isfinite(history.train_losses))
    assert np.isfinite(history.final_mean_eval_loss)
    assert 0 <= history.final_eval_metrics["retrieval_top1"] <= 1
    assert np.all(np.isfinite(history.final_mixture))


@pytest.mark.slow
def test_cli_runs_openclipart_and_refuses_too_many_unreadable_pictures(run_cli, clipart_root, tmp_path):
    env = {"MIXBENCH_OPENCLIPART": str(clipart_root)}
    small = ["--steps", "4", "--steps-per-round", "2", "--batch-size", "8", "--no-progress", "--no-mlflow"]
    proc = run_cli("run", "--algo", "rnb", "--task", "openclipart", "--domains", "original", *small, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "retrieval_top1" in proc.stdout
    png = clipart_root / "usr" / "share" / "openclipart" / "png"
    for name in ("shapes_item_05.png", "shapes_item_07.png", "food_item_10.png", "animals_item_11.png",
                 "food_item_03.png"):
        (png / name.split("_")[0] / name).write_bytes(b"not a png")
    refused = run_cli("run", "--algo", "rnb", "--task", "openclipart", "--domains", "original", "--out", "again",
                      *small, env=env)
    assert refused.returncode == 2
    error_lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "images" in error_lines[0]
    assert not (tmp_path / "again").exists() or not list((tmp_path / "again").rglob("*.json"))
