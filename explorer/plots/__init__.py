"""Figure builders: pure functions, arrays in, `go.Figure` out (no streamlit calls).

common.py holds what every figure shares (colour scales, token labels); one module per page
topic. INSIDE adds attention.py, embeddings.py, activations.py; TRAINPAGE adds training.py.
"""
