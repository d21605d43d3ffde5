"""The Streamlit app's helpers (app.py stays at the top level: `streamlit run app.py`)."""
