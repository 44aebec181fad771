"""Answer Markdown makes the browser fetch nothing (agent/app/sources.py inert_images/inert_stream)."""

from agent.app.sources import inert_images, inert_stream


def test_image_markers_become_plain_text_and_other_markdown_stays():
    assert inert_images("a ![x](http://h/?q=s) b ![y][r] **bold** [link](http://h)") == \
        "a &#33;[x](http://h/?q=s) b &#33;[y][r] **bold** [link](http://h)"


def test_a_marker_split_across_streamed_pieces_is_caught():
    pieces = ["see !", "[x](http://h/?q=s)", " done!", "!", "[y](u) end!"]
    streamed = "".join(inert_stream(pieces))
    assert "![" not in streamed and streamed == inert_images("".join(pieces))
    assert "".join(inert_stream(["wow!"])) == "wow!"
