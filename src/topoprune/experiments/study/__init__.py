"""Studies: measurements that answer a question rather than compare methods.

- :mod:`.activations`: the topological activation study (Kochar et al.; ``topoprune study
  activations``).
- :mod:`.damage`: the damage study (Perera's recoverability claim; ``topoprune study damage``):
  do topological scores of a pruning predict how much accuracy it costs and how fast it comes
  back, better than the L1 mass it removes? Its statistics live in :mod:`.damage_stats`
  (torch-free), its scores in :mod:`.damage_scores` (a registry users can add to), its report in
  :mod:`.damage_report`.
"""

from __future__ import annotations

from .activations import (SPEEDUP_BAR, StudyConfig, build_study_report, load_study_config, parse_study_config,
                          run_study, study_table, summarize_study, summary_dict, verdict)

__all__ = ["StudyConfig", "load_study_config", "parse_study_config", "run_study", "build_study_report",
           "SPEEDUP_BAR", "summarize_study", "summary_dict", "study_table", "verdict"]
