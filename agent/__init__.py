"""Chat with your PDFs, locally: the library behind the CLI and the Streamlit app.

No Streamlit import anywhere in this package: the UI (`pages/`) only lays out widgets
and calls these modules.
"""
