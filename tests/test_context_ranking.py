"""Ranking files and regions on small repositories made by the tests."""

from __future__ import annotations

import os
import textwrap

from quorum.context.localize import localize_fallback
from quorum.context.assemble import select
from quorum.context.index import build_index
from quorum.context.rank import rank

FILLER = "\n".join(f"def filler_{i}(value):\n    return value + {i}\n" for i in range(30))

APP = {
    "src/shop/__init__.py": "from .cart import Cart\n",
    "src/shop/cart.py": textwrap.dedent('''
        """Shopping cart."""
        from .pricing import total_price


        class Cart:
            """Holds items."""

            def __init__(self):
                self.items = []

            def add(self, item, quantity=1):
                self.items.append((item, quantity))

            def checkout(self, coupon=None):
                def apply_coupon(amount):
                    if coupon.percent > 100:
                        raise ValueError("coupon percent cannot exceed 100")
                    return amount * (100 - coupon.percent) / 100

                amount = total_price(self.items)
                return apply_coupon(amount) if coupon else amount
        ''').lstrip("\n")
    + "\n\n"
    + FILLER,
    "src/shop/pricing.py": '''
        def total_price(items):
            """Sum of price times quantity."""
            return sum(item.price * quantity for item, quantity in items)


        def format_price(amount, currency="EUR"):
            return f"{amount:.2f} {currency}"
        ''',
    "src/shop/inventory.py": '''
        class Inventory:
            def add(self, item):
                """Add an item to the stock."""
                self.stock.append(item)

            def remove(self, item):
                self.stock.remove(item)
        ''',
    "tests/test_cart.py": """
        from shop.cart import Cart


        def test_checkout_without_coupon():
            assert Cart().checkout() == 0
        """,
    "docs/cart.md": "# Cart\n\nThe cart applies a coupon at checkout.\n",
}


def test_traceback_points_at_a_nested_function(make_repo, cache_dir):
    repo = make_repo(APP)
    index = build_index(repo, cache_dir)
    task = (
        "Checkout crashes with a coupon of more than 100 percent\n\n"
        "Traceback (most recent call last):\n"
        '  File "/home/me/app/main.py", line 3, in <module>\n'
        '  File "/venv/lib/python3.11/site-packages/shop/cart.py", line 22, in checkout\n'
        '  File "/venv/lib/python3.11/site-packages/shop/cart.py", line 17, in apply_coupon\n'
        "ValueError: coupon percent cannot exceed 100\n"
    )
    ranking = rank(index, task)
    assert ranking.files[0].path == "src/shop/cart.py"
    assert any("traceback frame" in r for r in ranking.files[0].reasons)
    top = ranking.regions[0]
    assert (top.path, top.qualname) == ("src/shop/cart.py", "Cart.checkout.apply_coupon")
    assert (top.start_line, top.end_line) == (15, 18)
    assert any("traceback frame line 17" in r for r in top.reasons)
    assert any("matches the task's message" in r for r in top.reasons)
    # the context holds the frame's line, and the enclosing method and class header come with it
    picker = select(index, ranking, 400)
    regions = picker.regions()
    assert sum(r.tokens for r in regions) <= 400
    assert any(r.path == "src/shop/cart.py" and r.start_line <= 17 <= r.end_line for r in regions)
    assert any(r.path == "src/shop/cart.py" and r.start_line <= 5 <= r.end_line for r in regions)  # class Cart


def test_a_name_defined_twice_is_told_apart_by_its_qualifier(make_repo, cache_dir):
    repo = make_repo(APP)
    index = build_index(repo, cache_dir)
    assert len(index.defs["add"]) == 2
    plain = rank(index, "`add` loses the quantity")
    names = [(r.path, r.qualname) for r in plain.regions if "defines `Cart.add` named in task" in r.reasons
             or "defines `Inventory.add` named in task" in r.reasons]  # fmt: skip
    assert set(names) == {("src/shop/cart.py", "Cart.add"), ("src/shop/inventory.py", "Inventory.add")}
    qualified = rank(index, "`Inventory.add` loses items")
    assert qualified.files[0].path == "src/shop/inventory.py"
    assert (qualified.regions[0].path, qualified.regions[0].qualname) == ("src/shop/inventory.py", "Inventory.add")
    assert any("`Inventory.add` named in task" in r for r in qualified.regions[0].reasons)
    # and by the module path
    by_module = rank(index, "shop.pricing.format_price ignores the currency")
    assert by_module.files[0].path == "src/shop/pricing.py"
    assert by_module.regions[0].qualname == "format_price"


def test_tests_docs_and_sources_are_told_apart(make_repo, cache_dir):
    repo = make_repo(APP)
    index = build_index(repo, cache_dir)
    ranking = rank(index, "checkout with a coupon gives the wrong amount")
    paths = [f.path for f in ranking.files]
    assert paths[0] == "src/shop/cart.py"
    assert paths.index("tests/test_cart.py") > 0 and paths.index("docs/cart.md") > 0
    test_entry = next(f for f in ranking.files if f.path == "tests/test_cart.py")
    assert any("test of ranked module src/shop/cart.py" in r for r in test_entry.reasons)
    doc_entry = next(f for f in ranking.files if f.path == "docs/cart.md")
    assert any(r.startswith("doc file") for r in doc_entry.reasons)


def test_callers_and_callees_of_the_best_region_are_pulled_in(make_repo, cache_dir):
    repo = make_repo(APP)
    index = build_index(repo, cache_dir)
    ranking = rank(index, "`Cart.checkout` rounds the amount wrongly")
    pricing = next(r for r in ranking.regions if r.qualname == "total_price")
    assert any(r.startswith("called by `Cart.checkout`") for r in pricing.reasons)


def test_exception_named_in_task_points_at_the_code_raising_it(make_repo, cache_dir):
    repo = make_repo({
        "pkg/errors.py": "class ParseError(Exception):\n    pass\n\n\nclass OtherError(Exception):\n    pass\n",
        "pkg/reader.py": (
            "from .errors import ParseError\n\n\n"
            "def read(text):\n    if not text:\n        raise ParseError('empty input')\n    return text\n"
        ),
        "pkg/writer.py": "def write(text):\n    return text\n",
    })  # fmt: skip
    ranking = rank(build_index(repo, cache_dir), "`ParseError` is raised for valid input")
    assert ranking.files[0].path == "pkg/reader.py"
    assert any("raises or handles `ParseError`" in r for r in ranking.regions[0].reasons)


def test_deterministic_fallback_localization(make_repo, cache_dir):
    repo = make_repo(APP)
    index = build_index(repo, cache_dir)
    loc = localize_fallback(index, rank(index, "`Cart.checkout` ignores the coupon"))
    assert loc.edit_files == ["src/shop/cart.py"]
    assert loc.read_files[0] == "src/shop/cart.py"
    assert loc.symbols[0].qualname == "Cart.checkout" and loc.symbols[0].path == "src/shop/cart.py"


def test_binary_symlink_and_bad_files_are_listed_with_reasons(make_repo, cache_dir, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("def secret_function():\n    return 1\n")
    repo = make_repo({
        "pkg/mod.py": "def visible():\n    return 1\n",
        "pkg/blob.bin": b"\x00\x01\x02secret_function",
        "pkg/latin.py": b"def caf\xe9():\n    pass\n",
        "uv.lock": "secret_function\n",
    })  # fmt: skip
    os.symlink(outside, repo / "pkg" / "link.py")
    os.symlink(tmp_path, repo / "linkdir")
    index = build_index(repo, cache_dir)
    skips = {p: e.skip for p, e in index.files.items()}
    assert skips["pkg/blob.bin"] == "binary"
    assert skips["pkg/latin.py"] == "not UTF-8"
    assert skips["pkg/link.py"] == "symlink"
    assert skips["uv.lock"] == "lock file"
    assert skips["pkg/mod.py"] is None
    assert not any(p.startswith("linkdir/") for p in index.files)  # a symlinked directory is not walked
    assert "secret_function" not in index.defs
    ranking = rank(index, "secret_function is broken")
    assert all(f.path == "pkg/mod.py" or f.path not in ("pkg/blob.bin", "pkg/link.py") for f in ranking.files)


WARNING_HEAVY = {
    "pkg/core.py": "".join(
        f"def old_api_{i}(value):\n    if isinstance(value, bytes):\n"
        f"        warnings.warn('old_api_{i} takes text: bytes are deprecated, a warning', DeprecationWarning)\n"
        f"    return value\n\n\n"
        for i in range(6)
    ).replace("def old_api_0", "import warnings\n\n\ndef old_api_0"),
    "pkg/paths.py": "def is_dash(value):\n    return value in (b'-', '-')\n\n\ndef clean(value):\n    return value.strip()\n",
}


def test_the_category_word_of_an_undefined_exception_does_not_outweigh_its_stem(make_repo, cache_dir):
    from quorum.context.query import parse_query
    from quorum.context.rank import generic_suffixes_dropped

    index = build_index(make_repo(WARNING_HEAVY), cache_dir)
    task = "Comparing a value triggers `BytesWarning` under `python -bb`"
    assert "warn" not in generic_suffixes_dropped(parse_query(task), index)
    ranking = rank(index, task)
    assert (ranking.regions[0].path, ranking.regions[0].qualname) == ("pkg/paths.py", "is_dash")
    # a category word the task uses on its own still counts
    assert "warn" in generic_suffixes_dropped(parse_query("`BytesWarning`: the warning is shown twice"), index)
