"""spprof's version, in a module of its own so that any module can read it without importing the
package's public face (which imports nearly everything)."""
__version__ = "0.1.0"
