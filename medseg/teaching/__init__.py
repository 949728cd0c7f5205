"""Teaching code for the notebooks: a 2D slice task, four networks and a small comparison loop.

Nothing here is a bundle training path. Bundles train through their own ``train.json``
(``medseg train``); this package exists so that ``notebooks/02_architectures.ipynb`` stays short and
its pieces are unit-tested.
"""
