"""An example edgedev driver for a line-based TCP protocol ("linetcp").

The device answers one text line per request line:

* ``READ KEY...`` -> ``OK VALUE...`` (one value per key, in order), or ``ERR REASON``;
* ``WRITE KEY VALUE`` -> ``OK``, or ``ERR REASON``.
"""
