"""Reports: the console view (Rich) and the HTML pages with their figures.

They read records (the profile, the plan, the run's evaluation as dictionaries)
and never import Keras or the strategies.
"""
