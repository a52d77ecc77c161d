"""Glassbox GPT explorer: the Streamlit app."""
