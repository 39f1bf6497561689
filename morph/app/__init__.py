"""Everything a person looks at: figures, widgets and the Voila dashboard, and the guards of its server.

Needs the ``app`` extra (``pip install 'morph[app]'``): plotly, anywidget,
ipywidgets. ``import morph`` never imports this package.
"""
