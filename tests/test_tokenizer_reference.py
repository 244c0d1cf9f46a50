#!/usr/bin/env python3
"""longnet's tokenizers against the Python references, offline.

tiktoken: trains a byte-level BPE ranks file here (the real cl100k_base cannot be downloaded),
builds tiktoken.Encoding with cl100k_base's pattern and special-token rule, and compares ids on
texts of code, Unicode, whitespace and digit runs, emoji and long pieces, many of them unlike the
training text; then decode(encode(x)) == x, and the `encode` / `decode` commands end to end.
SentencePiece: trains a model with `longnet tokenizer train` and compares ids and decodes with the
Python sentencepiece package.

usage: test_tokenizer_reference.py TOKENIZER_TOOL WORK_DIR LONGNET     (exit 77: skipped)
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe_ranks import CL100K_PAT, SPECIALS, bpe_train, write_tiktoken  # noqa: E402

SKIP = 77
TOOL, WORK, LONGNET = sys.argv[1], sys.argv[2], sys.argv[3]

# The older spelling of the same pattern (the issue quotes this one); it must split alike.
CL100K_PAT_OLD = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}"""
                  r"""\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def tool(*args, stdin=None):
    r = subprocess.run([TOOL, *args], input=stdin, capture_output=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: tokenizer_tool {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def batch_encode(spec, texts):
    inp, out = os.path.join(WORK, "in.bin"), os.path.join(WORK, "out.bin")
    with open(inp, "wb") as f:
        for t in texts:
            b = t if isinstance(t, bytes) else t.encode("utf-8")
            f.write(struct.pack("<I", len(b)) + b)
    tool("batch-encode", spec, inp, out)
    data, pos, res = open(out, "rb").read(), 0, []
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        res.append(list(struct.unpack_from(f"<{n}I", data, pos + 4)))
        pos += 4 + 4 * n
    assert len(res) == len(texts)
    return res


def batch_decode(spec, id_lists):
    inp, out = os.path.join(WORK, "in.bin"), os.path.join(WORK, "out.bin")
    with open(inp, "wb") as f:
        for ids in id_lists:
            f.write(struct.pack(f"<I{len(ids)}I", len(ids), *ids))
    tool("batch-decode", spec, inp, out)
    data, pos, res = open(out, "rb").read(), 0, []
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        res.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return res


# ---- texts ------------------------------------------------------------------------------------

def header_files():
    out = []
    for root, dirs, files in os.walk("/usr/include"):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            if os.path.islink(p) or not name.endswith((".h", ".hpp")):
                continue
            try:
                out.append(open(p, encoding="utf-8").read())
            except (UnicodeDecodeError, OSError):
                pass
    return out


UNICODE_SAMPLES = [
    "你好，世界！这是一个测试。机器学习和自然语言处理。",
    "日本語のテキスト：ひらがな、カタカナ、漢字。東京は大きい都市です。",
    "한국어 텍스트입니다. 안녕하세요! 한글 자모",
    "مرحبا بالعالم، هذه جملة عربية مع تشكيل: بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ ١٢٣٤٥",
    "שלום עולם, זה טקסט בעברית.",
    "नमस्ते दुनिया, यह हिंदी पाठ है। क्षत्रिय",
    "สวัสดีชาวโลก นี่คือข้อความภาษาไทย",
    "Привет, мир! Ёжик в тумане. Ελληνικά: καλημέρα κόσμε.",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ 🧑🏿‍🚀 #️⃣",
    "Combining: e\u0301 a\u0308 n\u0303 Z\u0335\u0321\u0322a\u0337\u034el\u0336g\u0334o\u0335",
    "digits 1 12 123 1234 12345 123456789012345 ٠١٢٣٤٥٦ １２３４５ ²³¹ Ⅻ ⅷ 3.14159 1e-9",
    "whitespace:  two   three    four\ttab\t\ttabs\n\nnewlines\r\nCRLF\r\n\r\n  \n  end",
    "nbsp\u00a0here, ideographic\u3000space, en\u2002quad, line\u2028sep, para\u2029sep, nel\u0085x",
    "mongolian vowel separator:\u180e|zero width\u200bspace|BOM\ufeff|",
    "contractions: I'm you're they've he'll she'd it's don't I'M YOU'RE THEY'VE IT'S 'ſ 'ſt",
    "quotes 'hello' \"world\" ''' ``` '''s",
    "trailing spaces   ",
    "trailing newlines\n\n\n",
    "   leading spaces",
    "\n\n\nleading newlines",
    "<|endoftext|> special tokens are plain text <|fim_prefix|><|fim_middle|><|fim_suffix|>",
    "<|endofprompt|>",
    "",
    " ",
    "\n",
    "\t",
    "a",
    "int main(int argc, char** argv) {\n    return 0;\n}\n",
    "def f(x):\n\tif x:\n\t\treturn [i ** 2 for i in range(10)]\n",
    "x" * 5000,
    " " * 10000,
    "=" * 3000 + "\n",
    "abcdefghij" * 700,
    "1234567890" * 300,
    "\n" * 500,
    " \n" * 300,
    "\t \t \n" * 200,
    "ab" * 2000 + " " + "ba" * 2000,
    "αβγδεζηθ" * 300,
    "漢字" * 1000,
    "😀" * 500,
]


def random_texts(rng, count):
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        " \t\n\r\x0b\x0c\u00a0\u2000\u2003\u200a\u3000\u0085\u2028\u180e\u200b",
        "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿ",
        "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ",
        "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГ",
        "的一是在不了有和人这中大为上个国我以要他",
        "あいうえおかきくけこアイウエオカキクケコ",
        "가나다라마바사아자차카타파하",
        "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
        "\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652",
        "कखगघङचछजझञटठडढणतथदधन\u093e\u093f\u0940\u094d",
        "\u0301\u0302\u0303\u0308\u0327",
        "😀😁😂🤣😃😄😅😆😉😊👍👎👏🙏🚀🌍",
        "\u200d\ufe0f\U0001f3fb\U0001f3fd\U0001f3ff",
        "٠١٢٣٤٥٦٧٨٩１２３４５６７８９²³¹½ⅫⅧ",
        "'sSdDmMtTlLvVeErR",
    ]
    texts = []
    for _ in range(count):
        n = rng.choice([1, 2, 3, 5, 8, 20, 50, 200, 1000])
        weights = [rng.random() ** 3 for _ in pools]
        chars = []
        for _ in range(n):
            pool = rng.choices(pools, weights)[0]
            run = rng.choice([1, 1, 1, 2, 4, 12])
            chars.append("".join(rng.choice(pool) for _ in range(run)))
        texts.append("".join(chars))
    return texts


def code_chunks(rng, files, count):
    texts = []
    for _ in range(count):
        f = rng.choice(files)
        start = rng.randrange(max(1, len(f)))
        texts.append(f[start:start + rng.choice([10, 100, 1000, 5000])])
    return texts


# ---- a small byte-level BPE trainer (the ranks file under test) --------------------------------

# A few tokens no merge makes: found only when a whole piece equals one.
EXTRA_TOKENS = [" xyzzy", "plugh", " 😀😀", "ab" * 10, "    ", "\n\n\n", "'ll", " unseenword"]


def check(cond, msg):
    if not cond:
        sys.exit("FAIL: " + msg)


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def long_encode_check(spec, reference, files, extra=("word\n" * 250_000,)):
    """Texts over one piece (1 MiB): `tokenizer encode` tokenizes them in pieces cut where the
    tokenizer splits anyway, so its ids equal the reference's for the whole text. (`extra`: texts
    that only some tokenizers can cut exactly. A SentencePiece model that normalizes nothing
    keeps a newline inside a word, so "word\n" * 250_000 is one word of 1.25 MB: cut inside it,
    ids may differ.)"""
    texts = ["abc " * 300_000, "a " * ((2**20 - 4) // 2) + "\n\n\n\n\nb" * 1000,
             "\n".join(files)[:2_500_000], "The cat sat.\nA dog ran.\n" * 100_000,
             "\n ab" * 300_000, "\n    return x;" * 80_000, "ab  cd " * 200_000, *extra]
    for t in texts:
        got = [int(x) for x in tool("encode", "--tokenizer", spec, stdin=t.encode()).split()]
        want = reference(t)
        if got != want:
            i = first_difference(got, want)
            sys.exit(f"FAIL: {spec.split(':')[0]} ids of a {len(t)}-byte text differ at id {i}: "
                     f"longnet {got[max(0, i - 3):i + 5]} reference {want[max(0, i - 3):i + 5]}")
    print(f"{spec.split(':')[0]}: `tokenizer encode` of {len(texts)} texts over 1 MiB "
          f"({sum(map(len, texts))} bytes) equals the reference's ids for the whole text")


def test_tiktoken(rng, files):
    import tiktoken
    if tool("available", "tiktoken").strip() != b"yes":
        print("tiktoken: compiled out of this build; skipped")
        return False
    # Train on every third header file plus a little Unicode; test on the others.
    train_text = "\n".join(files[::3])[:1_500_000] + "\n".join(UNICODE_SAMPLES[:6]) * 3
    ranks = bpe_train(train_text, 3000, CL100K_PAT, rng, EXTRA_TOKENS)
    path = os.path.join(WORK, "test.tiktoken")
    write_tiktoken(path, ranks)
    n = len(ranks)
    specials = {s: n + i for i, s in enumerate(SPECIALS)}
    enc = tiktoken.Encoding("longnet_test", pat_str=CL100K_PAT, mergeable_ranks=ranks,
                            special_tokens=specials)
    enc_old = tiktoken.Encoding("longnet_test_old", pat_str=CL100K_PAT_OLD, mergeable_ranks=ranks,
                                special_tokens=specials)
    held_out = [f for i, f in enumerate(files) if i % 3 != 0]
    texts = (UNICODE_SAMPLES + random_texts(rng, 600) + code_chunks(rng, held_out, 300) +
             held_out[:40])
    spec = "tiktoken:" + path
    ours = batch_encode(spec, texts)
    total_ids = 0
    for t, got in zip(texts, ours):
        want = enc.encode_ordinary(t)
        if got != want:
            i = first_difference(got, want)
            sys.exit(f"FAIL: tiktoken ids differ for {t[:80]!r} (len {len(t)}) at id {i}: "
                     f"longnet {got[max(0, i - 3):i + 5]} tiktoken {want[max(0, i - 3):i + 5]} "
                     f"({enc.decode(want[i:i + 5])!r})")
        check(enc_old.encode_ordinary(t) == want, f"old and new cl100k patterns differ on {t[:60]!r}")
        total_ids += len(want)
    print(f"tiktoken: {len(texts)} texts, {sum(len(t) for t in texts)} characters, {total_ids} ids "
          f"equal to Python tiktoken {tiktoken.__version__} ({n} ranks, {n - 256} merges)")

    # decode(encode(x)) == x, and the decodes equal tiktoken's.
    decoded = batch_decode(spec, ours)
    for t, d in zip(texts, decoded):
        check(d == t.encode("utf-8"), f"decode(encode(x)) != x for {t[:60]!r}")
    # Special ids decode to their text; a special string in text is ordinary text.
    sp = batch_decode(spec, [[specials[s]] for s in SPECIALS])
    check([x.decode() for x in sp] == SPECIALS, f"special tokens decode to {sp}")
    eot_text = batch_encode(spec, ["<|endoftext|>"])[0]
    check(specials["<|endoftext|>"] not in eot_text, "'<|endoftext|>' in text gave the eot id")
    # Bytes that are not UTF-8 round-trip.
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(100)]
    junk += [b"abc\xff\xfe def", b"\xe4\xbd", "caf\u00e9".encode("latin-1"), b"  \x80\n\n"]
    back = batch_decode(spec, batch_encode(spec, junk))
    check(back == junk, "decode(encode(x)) != x for bytes that are not UTF-8")
    print(f"tiktoken: decode(encode(x)) == x for {len(texts)} texts and {len(junk)} non-UTF-8 "
          "byte strings; special tokens decode to their text and are plain text in encode")

    # The commands, end to end.
    sample = "Hello, world! 你好 😀\n  indented\tcode();\n"
    ids = [int(x) for x in tool("encode", "--tokenizer", spec, stdin=sample.encode()).split()]
    check(ids == enc.encode_ordinary(sample), f"`tokenizer encode` gave {ids}")
    text = tool("decode", "--tokenizer", spec, stdin=" ".join(map(str, ids)).encode())
    check(text == sample.encode(), f"`tokenizer decode` gave {text!r}")
    info = tool("info", "--tokenizer", spec).decode()
    check(f"vocab_size {n + 5}" in info and f"eot_id {n}" in info, f"`tokenizer info`: {info}")
    print("tiktoken: `tokenizer encode`, `decode` and `info` agree")
    # Long runs that only the pre-tokenizer can cut exactly: groups of three digits, two spaces
    # before a word, tabs.
    long_encode_check(spec, enc.encode_ordinary, held_out,
                      ["word\n" * 250_000, "1" * 1_048_583, "ab  " * 262_151, "ab\t" * 349_539,
                       "x=1;" * 300_000])
    return True


def test_sentencepiece(rng, files):
    import sentencepiece as spm
    if tool("available", "sentencepiece").strip() != b"yes":
        print("sentencepiece: compiled out of this build; skipped")
        return False
    corpus = os.path.join(WORK, "sp_corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    os.makedirs(corpus)
    for i, f in enumerate(files[:300:3]):
        open(os.path.join(corpus, f"{i:04d}.h"), "w").write(f)
    with open(os.path.join(corpus, "unicode.jsonl"), "w") as f:
        for s in UNICODE_SAMPLES[:12] * 5:
            f.write(json.dumps({"text": s, "id": 1}) + "\n")
    model = os.path.join(WORK, "sp.model")
    out = tool("train", "--vocab-size", "1200", "--source", corpus, "--out", model,
               "--threads", "1").decode()
    print("sentencepiece: " + out.strip())
    sp = spm.SentencePieceProcessor(model_file=model)
    check(sp.get_piece_size() == 1200, f"model has {sp.get_piece_size()} pieces")
    texts = UNICODE_SAMPLES + random_texts(rng, 300) + code_chunks(rng, files[1::3], 200)
    spec = "sentencepiece:" + model
    ours = batch_encode(spec, texts)
    total = 0
    for t, got in zip(texts, ours):
        want = sp.encode(t)
        if got != want:
            i = first_difference(got, want)
            sys.exit(f"FAIL: sentencepiece ids differ for {t[:80]!r} at id {i}: longnet "
                     f"{got[max(0, i - 3):i + 5]} python {want[max(0, i - 3):i + 5]}")
        total += len(want)
    decoded = batch_decode(spec, ours)
    same = 0
    for t, got, d in zip(texts, ours, decoded):
        check(d == sp.decode(got).encode("utf-8"), f"sentencepiece decode differs for {t[:60]!r}")
        same += d == t.encode("utf-8")
    long_encode_check(spec, sp.encode, files[1::3])
    info = tool("info", "--tokenizer", spec).decode()
    check("exact yes" in info, f"`tokenizer info` of longnet's own model: {info}")
    # A model made elsewhere with SentencePiece's defaults (NFKC normalisation, extra white space
    # removed, no byte fallback) loses text: `tokenizer info` says so, with an example.
    lossy = os.path.join(WORK, "lossy")
    inputs = [os.path.join(corpus, f"{i:04d}.h") for i in range(20)]
    spm.SentencePieceTrainer.train(input=",".join(inputs), model_prefix=lossy, vocab_size=300,
                                   minloglevel=2)
    info = tool("info", "--tokenizer", f"sentencepiece:{lossy}.model").decode()
    check("exact no: " in info and "comes back as" in info, f"`tokenizer info` of a lossy model: {info}")
    # Its normalization table (NFKC's, a darts-clone trie) is walked and accepted above; a
    # damaged one appended to the model (the last occurrence wins) is refused, not followed
    # into a crash.
    with open(lossy + ".model", "rb") as f:
        model = f.read()

    def varint(n):
        out = b""
        while True:
            out += bytes([n & 127 | (128 if n > 127 else 0)])
            n >>= 7
            if not n:
                return out
    garbage = b"\x00\x04\x00\x00" + bytes(random.Random(1).getrandbits(8) for _ in range(1400))
    spec = b"\x12" + varint(len(garbage)) + garbage
    damaged = os.path.join(WORK, "damaged.model")
    with open(damaged, "wb") as f:
        f.write(model + b"\x1a" + varint(len(spec)) + spec)
    run = subprocess.run([TOOL, "info", "--tokenizer", "sentencepiece:" + damaged],
                         capture_output=True)
    check(run.returncode == 1 and b"precompiled_charsmap of its normalizer_spec is damaged"
          in run.stdout + run.stderr, f"a damaged normalization table: status {run.returncode}, "
          f"{(run.stdout + run.stderr)[-300:]!r}")
    # Documents are separated by </s>, else by the ids of a newline; a model with neither (no
    # </s>, newlines normalised away) separates them by nothing, which `data build` says.
    check(tool("separator", f"sentencepiece:{lossy}.model").split() == [b"2"],
          "the lossy model's </s> does not separate documents")
    no_eos = os.path.join(WORK, "no_eos")
    spm.SentencePieceTrainer.train(input=",".join(inputs), model_prefix=no_eos, vocab_size=300,
                                   eos_id=-1, minloglevel=2)
    check(tool("separator", f"sentencepiece:{no_eos}.model").split() == [],
          "a model without </s> that drops newlines has a separator")
    docs = os.path.join(WORK, "docs")
    os.makedirs(docs, exist_ok=True)
    for name, text in (("a.txt", "first document"), ("b.txt", "second document")):
        with open(os.path.join(docs, name), "w") as f:
            f.write(text)
    run = subprocess.run([LONGNET, "data", "build", "--tokenizer", f"sentencepiece:{no_eos}.model",
                          "--source", docs, "--out", os.path.join(WORK, "docs_ds"),
                          "--val-fraction", "0", "--no-progress"], capture_output=True)
    check(b"follow one another with no boundary" in run.stdout + run.stderr,
          f"data build with no document separator: {(run.stdout + run.stderr)[-400:]!r}")
    # Llama's settings: a dummy prefix without removing extra white space, so a piece cut before
    # a space must not get both the space and the prefix.
    llama = os.path.join(WORK, "llama_like")
    spm.SentencePieceTrainer.train(input=",".join(inputs), model_prefix=llama, vocab_size=600,
                                   model_type="bpe", byte_fallback=True, split_digits=True,
                                   normalization_rule_name="identity", add_dummy_prefix=True,
                                   remove_extra_whitespaces=False,
                                   allow_whitespace_only_pieces=True, minloglevel=2)
    llama_sp = spm.SentencePieceProcessor(model_file=llama + ".model")
    long_encode_check(f"sentencepiece:{llama}.model", llama_sp.encode, files[1::3], extra=())
    # Generation prints the ids after a prompt's: a continuation whose first piece starts with
    # the space mark keeps its space (decoded alone, the dummy prefix would drop it).
    full = llama_sp.encode("int main(void) { return 0; }")
    k = next(i for i in range(1, len(full)) if llama_sp.id_to_piece(full[i]).startswith("\u2581"))
    want = llama_sp.decode(full)[len(llama_sp.decode(full[:k])):]
    got = tool("stream", f"sentencepiece:{llama}.model", ",".join(map(str, full[:k])),
               ",".join(map(str, full[k:]))).decode()
    check(got == want and want.startswith(" "),
          f"streamed continuation {got!r}, decoded after its prompt {want!r}")
    print(f"sentencepiece: {len(texts)} texts, {total} ids and their decodes equal to Python "
          f"sentencepiece {spm.__version__}; decode(encode(x)) == x for {same} of them (the "
          "others hold U+2581 or characters SentencePiece maps, see tokenizer.h)")
    return True


def main():
    try:
        import tiktoken  # noqa: F401
        import sentencepiece  # noqa: F401
        import regex  # noqa: F401
    except ImportError as e:
        print(f"skipped: {e} (pip install tiktoken sentencepiece; launch/setup.sh does)")
        return SKIP
    os.makedirs(WORK, exist_ok=True)
    rng = random.Random(20)
    files = header_files()
    if len(files) < 100:
        print("skipped: /usr/include has too few headers for a corpus")
        return SKIP
    ran = [test_tiktoken(rng, files), test_sentencepiece(rng, files)]
    if not any(ran):
        return SKIP
    print("tokenizer reference: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
