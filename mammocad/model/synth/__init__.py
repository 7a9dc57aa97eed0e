"""Synthetic screening mammograms with calcification ground truth (demo/training data only).

``generate_dataset(out_dir, n_studies, seed, size="small", spacing_mm=None)`` writes DICOM
files and a manifest; ``generate_study(index, seed=...)`` returns one study in memory.
"""

from mammocad.model.synth.generate import SynthStudy, generate_dataset, generate_study

__all__ = ["SynthStudy", "generate_dataset", "generate_study"]
