"""Face data: every source yields `types.FaceSample` (112x112 RGB, label, 68 landmarks).

synthetic.py  built-in generated faces (the default)     folders.py    <root>/<identity>/<image> folders
sources.py    open either by name                         landmarks.py  cascade detection, canonical template
roi.py        convex-hull ROI masks from landmarks        pairs.py      LFW pairs files, synthetic pairs
partition.py  identities onto federated clients
"""
