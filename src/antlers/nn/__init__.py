"""Network parts below the tasks: the lecture's networks (``lecture``) and the building blocks
every task may use (``blocks``)."""
