"""The Streamlit app's parts, by what the page shows (app.py, the entry point, stays at the top
level: `streamlit run app.py`): ui.single (one photo), ui.explain (a typed caption), ui.compare
(every model side by side), ui.table (several photos); ui.sidebar, ui.photos and ui.models (the
models, loaded once per process and shared read-only) feed them; ui.support, ui.grounding,
ui.maps and ui.downloads are pure helpers, testable without a page."""
