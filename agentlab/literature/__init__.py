"""Literature: sources (arXiv, local), papers and their BibTeX."""
