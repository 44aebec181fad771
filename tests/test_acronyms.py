from agent.ingest.acronyms import acronym_title, definitions, with_acronyms
from agent.ingest.parse import ParsedPage
from agent.search.tokens import tokenize

TEXT = ("Nettle provides several other modes of operation: Cipher Block Chaining (CBC), Counter mode (CTR), "
        "Cipher Feedback (CFB and CFB8), XEX-based tweaked-codebook mode with ciphertext stealing (XTS). "
        "The supported AEAD constructions are Galois/Counter mode (GCM), EAX, and Counter with CBC-MAC (CCM). "
        "See the reference (PDF) or RFC 5116 (2008).")


def test_definitions_follow_the_letters_of_the_acronym():
    found = definitions(TEXT)
    assert found["CBC"] == frozenset(tokenize("cipher block chaining"))
    assert found["CTR"] == frozenset(tokenize("counter mode"))
    assert found["GCM"] == frozenset(tokenize("galois counter mode"))
    assert found["CCM"] == frozenset(tokenize("CBC-MAC"))  # the shortest words that hold C, C, M in order
    assert found["XTS"] == frozenset(tokenize("XEX-based tweaked-codebook mode with ciphertext stealing"))
    assert "PDF" not in found and "CFB" not in found  # no long form before it; not an acronym alone


def test_a_title_takes_the_acronym_of_the_longest_long_form_it_holds_as_one_run():
    found = definitions(TEXT)
    assert acronym_title("7.4.2 Galois counter mode", found) == "7.4.2 GCM"  # not CTR: a shorter form
    assert acronym_title("Counter with CBC-MAC mode", found) == "Counter with CCM mode"
    assert acronym_title("Counter mode", found) == "CTR"
    joined = definitions("modes: XEX-based tweakedcodebook mode with ciphertext stealing (XTS).")  # a line-break hyphen
    assert acronym_title("7.3.4 XEX-based tweaked-codebook mode with ciphertext stealing", joined) == "7.3.4 XTS"
    assert acronym_title("General GCM interface", found) is None  # names no long form
    assert acronym_title("Cipher Block Chaining (CBC) mode", found) is None  # names the acronym already
    assert acronym_title("Cipher modes and block chaining", found) is None  # the words, but not as one run


def test_pages_without_an_outline_or_a_definition_stay_as_they_are():
    pages = [ParsedPage(1, TEXT, False), ParsedPage(2, "Galois counter mode is fast.", False, ("Galois counter mode",))]
    assert with_acronyms(pages)[1].outline == ("Galois counter mode", "GCM")
    assert with_acronyms(pages)[0] is pages[0]
    plain = [ParsedPage(1, "No acronyms here.", False, ("Intro",))]
    assert with_acronyms(plain) == plain
    assert with_acronyms([ParsedPage(1, TEXT, False)])[0].outline == ()
