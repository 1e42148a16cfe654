"""Literature: paper sources (`paper_source.PaperSource`: arXiv, a local folder, the cache, plugins),
paper ids (`ids`), BibTeX (`bibtex`), the paper store and the review step (`review`)."""
