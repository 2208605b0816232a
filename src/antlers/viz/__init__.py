"""Pictures: matplotlib figures saved as atomic PNGs (``figures``), pixel images (tensors or PIL)
as atomic PNGs (``images``) and a run's report page (``html``). Importing this package imports
neither matplotlib nor torch."""
