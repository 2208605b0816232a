"""Pictures: matplotlib figures saved as atomic PNGs (``figures``) and a run's report page
(``html``). Importing this package imports neither matplotlib nor torch."""
