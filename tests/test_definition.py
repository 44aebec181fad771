"""The `definition` signal: a "what is X?" question favours the page that says what X is."""

from agent.search import retrieval
from agent.search.definition import definer, subject
from agent.search.retrieval import search
from tests.test_retrieval import Collection, ConstantEmbeddings, doc


def test_the_subject_of_a_what_is_question():
    assert subject("What is XTS mode?") == "xts mode"
    assert subject("What is a CRC?") == "crc"
    assert subject("What is DHAT used for?") == "dhat"
    assert subject("What does bzip2recover do?") == "bzip2recover"
    assert subject("导言区是什么？") == "导言区" and subject("什么是 CTAN？") == "ctan"
    assert subject("How do I use XTS mode?") is None
    assert subject("What is the power-to-weight ratio of a steam plant compared to an engine?") is None  # a description


def test_sentences_that_define_a_name_and_sentences_that_only_mention_it():
    defines = definer("xts mode")
    assert defines("xex-based tweaked-codebook mode with ciphertext stealing (xts) is a block mode")
    assert defines("xts mode is used for disks") and defines("the xts mode (xex-based) is a mode")
    assert not defines("call xts_encrypt_message in xts mode with a key")
    assert not definer("counter mode")("galois counter mode is counter mode with a hash")  # another name
    assert definer("bzip2recover")("bzip2recover - recovers data from damaged bzip2 files")
    assert definer("导言区")("文档的导言区是指 \\documentclass 与 \\begin{document} 之间的部分")
    assert not definer("导言区")("在导言区加载宏包")


def test_a_what_is_question_ranks_the_defining_page_above_the_page_that_names_it_most():
    interface = ("XTS mode functions: xts_encrypt_message encrypts in XTS mode; xts_decrypt_message decrypts in XTS "
                 "mode; the XTS mode AES interface uses the XTS mode key of XTS mode contexts.")
    overview = ("XEX-based tweaked-codebook mode with ciphertext stealing (XTS) is a block mode used for disk "
                "encryption: the XTS mode splits the last block.")
    coll = Collection([doc(interface, page=48), doc(overview, page=47)], ConstantEmbeddings())

    def first(question, **weights):
        hits = search(question, [coll], embeddings=coll.embeddings, k=2, weights={**retrieval.WEIGHTS, **weights})
        return hits[0].document.metadata["page"]

    assert first("What is XTS mode?", definition=0.0) == 48  # names it most often
    assert first("What is XTS mode?") == 47  # says what it is
    assert first("How do I call XTS mode functions?") == 48  # not a "what is" question: no definition signal


def test_a_long_or_hostile_question_is_no_what_is_question_and_costs_nothing():
    import time

    started = time.perf_counter()
    assert subject("What is " + "?" * 200_000 + "x") is None
    assert subject("What is " + "a " * 100 + "?") is None
    assert time.perf_counter() - started < 0.5
