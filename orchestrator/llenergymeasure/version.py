"""The package version, on the ground floor: every layer may read it without importing the
package face (`llenergymeasure/__init__.py`), which hands the public API on from the top."""
__version__ = "0.1.0"
