"""Build captioner/data/imagenet_words.json: ImageNet-1k class -> caption word, by WordNet.

    python -m scripts.build_object_words [--wordnet /usr/share/wordnet]

Run from the repo root. Needs WordNet 3.0's database files (Debian's `wordnet-base` puts them in
/usr/share/wordnet) and nltk, at build time only; the library reads the JSON alone.

Each ImageNet class is a WordNet 3.0 noun synset (timm ships their offsets, n02123045 ...).
From it a breadth-first walk over hypernyms (the synset itself first, then its parents, then
theirs) stops at the first synset in TARGETS, the concepts people name in captions, and gives
its word: golden retriever -> dog, Egyptian cat -> cat, school bus -> bus. A class that
reaches no target gets no entry. The JSON also carries COCO's 80 categories with their
synonyms (captioner/data/coco_synonyms.txt, CHAIR's list), so the runtime needs one file.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter, deque
from pathlib import Path

from captioner.files import atomic_write_text
from captioner.object_words import parse_synonyms

DATA = Path("captioner/data")
OUT = DATA / "imagenet_words.json"
SYNONYMS = DATA / "coco_synonyms.txt"

# WordNet's 45 lexicographer files, in file-number order (lexnames(5WN)); nltk's reader needs
# the `lexnames` file Debian does not ship. The syntactic category follows from the name.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)
SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

NOT_IN_WORDNET = ("stop sign",)  # COCO categories WordNet 3.0 has no synset for

# The target concepts: (WordNet synset, caption word, COCO category or None). The word is the
# one captions use (Flickr8k and COCO say "bike", "plane", "table", "tv", "phone"). A COCO
# category may take several synsets where WordNet splits what COCO lumps (trains and
# locomotives; tables and desks). Categories with no ImageNet class below them (giraffe,
# hair drier, ...) still get their synset, so the list is complete and checked.
TARGETS = (
    ("person.n.01", "person", "person"),
    ("bicycle.n.01", "bike", "bicycle"),
    ("car.n.01", "car", "car"),
    ("motorcycle.n.01", "motorcycle", "motorcycle"),
    ("motor_scooter.n.01", "scooter", "motorcycle"),
    ("moped.n.01", "moped", "motorcycle"),
    ("airplane.n.01", "plane", "airplane"),
    ("bus.n.01", "bus", "bus"),
    ("train.n.01", "train", "train"),
    ("locomotive.n.01", "train", "train"),
    ("streetcar.n.01", "train", "train"),
    ("car.n.02", "train", "train"),  # a railcar: passenger car, freight car
    ("truck.n.01", "truck", "truck"),
    ("vessel.n.02", "boat", "boat"),
    ("traffic_light.n.01", "traffic light", "traffic light"),
    ("fireplug.n.01", "fire hydrant", "fire hydrant"),
    ("parking_meter.n.01", "parking meter", "parking meter"),
    ("bench.n.01", "bench", "bench"),
    ("bird.n.01", "bird", "bird"),
    ("domestic_cat.n.01", "cat", "cat"),
    ("dog.n.01", "dog", "dog"),
    ("horse.n.01", "horse", "horse"),
    ("sheep.n.01", "sheep", "sheep"),
    ("cattle.n.01", "cow", "cow"),
    ("bison.n.01", "buffalo", "cow"),  # CHAIR counts buffalo and bison as cows
    ("old_world_buffalo.n.01", "buffalo", "cow"),
    ("elephant.n.01", "elephant", "elephant"),
    ("bear.n.01", "bear", "bear"),
    ("giant_panda.n.01", "panda", "bear"),  # a procyonid in WordNet, a bear to CHAIR
    ("zebra.n.01", "zebra", "zebra"),
    ("giraffe.n.01", "giraffe", "giraffe"),
    ("backpack.n.01", "backpack", "backpack"),
    ("umbrella.n.01", "umbrella", "umbrella"),
    ("bag.n.04", "purse", "handbag"),
    ("wallet.n.01", "wallet", "handbag"),
    ("necktie.n.01", "tie", "tie"),
    ("bag.n.06", "suitcase", "suitcase"),
    ("frisbee.n.01", "frisbee", "frisbee"),
    ("ski.n.01", "skis", "skis"),
    ("snowboard.n.01", "snowboard", "snowboard"),
    ("ball.n.01", "ball", "sports ball"),
    ("kite.n.03", "kite", "kite"),
    ("baseball_bat.n.01", "baseball bat", "baseball bat"),
    ("baseball_glove.n.01", "baseball glove", "baseball glove"),
    ("skateboard.n.01", "skateboard", "skateboard"),
    ("surfboard.n.01", "surfboard", "surfboard"),
    ("racket.n.04", "racket", "tennis racket"),
    ("bottle.n.01", "bottle", "bottle"),
    ("wineglass.n.01", "wine glass", "wine glass"),
    ("goblet.n.01", "glass", "wine glass"),  # a stemmed glass
    ("cup.n.01", "cup", "cup"),
    ("mug.n.04", "mug", "cup"),
    ("fork.n.01", "fork", "fork"),
    ("knife.n.01", "knife", "knife"),
    ("spoon.n.01", "spoon", "spoon"),
    ("bowl.n.03", "bowl", "bowl"),
    ("banana.n.02", "banana", "banana"),
    ("apple.n.01", "apple", "apple"),
    ("sandwich.n.01", "sandwich", "sandwich"),
    ("orange.n.01", "orange", "orange"),
    ("broccoli.n.02", "broccoli", "broccoli"),
    ("carrot.n.03", "carrot", "carrot"),
    ("hotdog.n.02", "hot dog", "hot dog"),
    ("pizza.n.01", "pizza", "pizza"),
    ("doughnut.n.02", "donut", "donut"),
    ("bagel.n.01", "bagel", "donut"),
    ("cake.n.03", "cake", "cake"),
    ("chair.n.01", "chair", "chair"),
    ("sofa.n.01", "couch", "couch"),
    ("pot.n.04", "plant", "potted plant"),  # a flowerpot
    ("bed.n.01", "bed", "bed"),
    ("table.n.02", "table", "dining table"),  # the furniture: desks, pool tables
    ("table.n.03", "table", "dining table"),  # a table laid for a meal: dining tables
    ("toilet.n.02", "toilet", "toilet"),
    ("toilet_seat.n.01", "toilet", "toilet"),
    ("television_receiver.n.01", "tv", "tv"),
    ("television.n.02", "tv", "tv"),  # ImageNet's "television" class names the system
    ("monitor.n.05", "monitor", "tv"),  # ImageNet's "monitor": its photos are screens
    ("screen.n.03", "monitor", "tv"),
    ("portable_computer.n.01", "laptop", "laptop"),
    ("desktop_computer.n.01", "computer", "laptop"),  # CHAIR counts computers as laptops
    ("mouse.n.04", "mouse", "mouse"),
    ("remote_control.n.01", "remote", "remote"),
    ("computer_keyboard.n.01", "keyboard", "keyboard"),
    ("telephone.n.01", "phone", "cell phone"),
    ("microwave.n.02", "microwave", "microwave"),
    ("oven.n.01", "oven", "oven"),
    ("stove.n.01", "stove", "oven"),
    ("toaster.n.02", "toaster", "toaster"),
    ("sink.n.01", "sink", "sink"),
    ("washbasin.n.02", "sink", "sink"),
    ("refrigerator.n.01", "refrigerator", "refrigerator"),
    ("book.n.02", "book", "book"),
    ("comic_book.n.01", "book", "book"),
    ("book_jacket.n.01", "book", "book"),  # ImageNet's photos of book covers
    ("clock.n.01", "clock", "clock"),
    ("vase.n.01", "vase", "vase"),
    ("scissors.n.01", "scissors", "scissors"),
    ("teddy.n.01", "teddy bear", "teddy bear"),
    ("hand_blower.n.01", "hair drier", "hair drier"),
    ("toothbrush.n.01", "toothbrush", "toothbrush"),
    # Broad nouns outside COCO that Flickr8k captions use often and ImageNet classes fall under
    # (captions naming them, of 40,000: shirt 1,729, camera 678, hat 667, mountain 539,
    # helmet 355, sunglasses 272, flower(s) 202, fountain 179, guitar 161, bridge 140, fish 52,
    # monkey 22). Only these; finer ImageNet animals (lizards, spiders) are rarely in captions.
    ("shirt.n.01", "shirt", None),
    ("camera.n.01", "camera", None),
    ("hat.n.01", "hat", None),
    ("mountain.n.01", "mountain", None),
    ("helmet.n.02", "helmet", None),
    ("sunglasses.n.01", "sunglasses", None),
    ("flower.n.01", "flower", None),
    ("fountain.n.01", "fountain", None),
    ("guitar.n.01", "guitar", None),
    ("bridge.n.01", "bridge", None),
    ("fish.n.01", "fish", None),
    ("monkey.n.01", "monkey", None),
)


def wordnet_reader(wordnet_dir: Path, scratch: Path):
    """nltk's WordNet reader over WordNet's database files, copied into an nltk data folder
    with the `lexnames` file added (nltk reads only under its data path, links resolved)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    corpus = scratch / "corpora" / "wordnet"
    corpus.mkdir(parents=True)
    for file in wordnet_dir.iterdir():  # data.noun, index.noun, noun.exc, index.sense, ...
        if file.is_file():
            shutil.copyfile(file, corpus / file.name)
    (corpus / "lexnames").write_text("".join(
        f"{i:02d}\t{name}\t{SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
        for i, name in enumerate(LEXNAMES)))
    nltk.data.path.insert(0, str(scratch))
    wn = WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None)
    if wn.get_version() != "3.0" or wn.synset_from_pos_and_offset("n", 2123045).name() != "tabby.n.01":
        raise RuntimeError(f"{wordnet_dir} is not WordNet 3.0")
    return wn


def imagenet_synsets() -> list[str]:
    """timm's ImageNet-1k class order: one WordNet noun id (n02123045) per class."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


def imagenet_labels() -> list[str]:
    from captioner.imagenet import imagenet_names
    return list(imagenet_names())


def closest_target(synset, targets: dict) -> tuple[object, int] | None:
    """Breadth-first over hypernyms (instance hypernyms too), nearest first: (target, steps)."""
    queue, seen = deque([(synset, 0)]), {synset}
    while queue:
        s, depth = queue.popleft()
        if s.name() in targets:
            return s, depth
        for parent in s.hypernyms() + s.instance_hypernyms():
            if parent not in seen:
                seen.add(parent)
                queue.append((parent, depth + 1))
    return None


def build(wn, synsets: list[str], labels: list[str], synonyms: str) -> dict:
    categories, people = parse_synonyms(synonyms)
    targets = {name: (word, category) for name, word, category in TARGETS}
    for name, word, category in TARGETS:
        wn.synset(name)  # fails loudly on a misspelt synset
        if category is not None and category not in categories:
            raise ValueError(f"{name}: {category!r} is not a COCO category")
    missing = set(categories) - {c for _, _, c in TARGETS} - set(NOT_IN_WORDNET)
    if missing:
        raise ValueError(f"COCO categories without a target synset: {sorted(missing)}")
    classes = {}
    for index, (wnid, label) in enumerate(zip(synsets, labels)):
        found = closest_target(wn.synset_from_pos_and_offset("n", int(wnid[1:])), targets)
        if found is not None:
            target, depth = found
            word, category = targets[target.name()]
            classes[str(index)] = {"label": label, "word": word, "category": category,
                                   "depth": depth, "target": target.name()}
    return {
        "about": "ImageNet-1k class index -> caption word, and COCO's categories with their "
                 "synonyms. Generated by scripts/build_object_words.py from WordNet 3.0 and "
                 "captioner/data/coco_synonyms.txt (CHAIR's list, Rohrbach et al. 2018); do "
                 "not edit. depth: hypernym steps from the class's synset to the target. "
                 "similar: each word's nearest other words in WordNet, nearest first.",
        "people": people,
        "categories": {name: list(words) for name, words in categories.items()},
        "similar": similar_words(wn),
        "classes": classes,
    }


def similar_words(wn, keep: int = 8) -> dict[str, list[str]]:
    """Each target word's nearest other target words by WordNet path length (ties by name):
    the word a new word borrows its weights from (DCC/NOC-style transfer, training.vocab_growth)
    is the first of these a vocabulary has ("zebra" -> "horse")."""
    synsets = {}
    for name, word, _ in TARGETS:
        synsets.setdefault(word, wn.synset(name))
    similar = {}
    for word, synset in synsets.items():
        distances = []
        for other, other_synset in synsets.items():
            if other != word:
                distance = synset.shortest_path_distance(other_synset)
                if distance is not None:
                    distances.append((distance, other))
        similar[word] = [other for _, other in sorted(distances)[:keep]]
    return similar


def to_json(table: dict) -> str:
    """JSON with one line per category and per class, so that diffs read row by row."""
    def rows(mapping: dict) -> str:
        return ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                           for k, v in mapping.items())
    return (f'{{\n "about": {json.dumps(table["about"])},\n "people": {json.dumps(table["people"])},\n'
            f' "categories": {{\n{rows(table["categories"])}\n }},\n'
            f' "similar": {{\n{rows(table["similar"])}\n }},\n'
            f' "classes": {{\n{rows(table["classes"])}\n }}\n}}\n')


def summary(table: dict) -> str:
    classes = table["classes"].values()
    words = Counter(c["word"] for c in classes)
    per_category = Counter(c["category"] for c in classes)
    lines = [f"{len(table['classes'])} of 1000 ImageNet classes -> {len(words)} words"]
    lines += [f"  {category}: {per_category.get(category, 0)}" for category in table["categories"]]
    lines.append(f"  (outside COCO): {per_category.get(None, 0)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet",
                        help="folder with WordNet 3.0's data.noun, index.noun, ...")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        wn = wordnet_reader(Path(args.wordnet), Path(scratch))
        table = build(wn, imagenet_synsets(), imagenet_labels(), SYNONYMS.read_text("utf-8"))
    atomic_write_text(OUT, to_json(table))
    print(summary(table))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
