"""vgt-tiny, the embedded policy: its recipe, vocabulary, warm-up drills, shipped weights, `vgt repro tiny`
and the table in miniature. The random tiny Gemma3 it starts from is built by `backends/tiny_gemma3.py`."""
