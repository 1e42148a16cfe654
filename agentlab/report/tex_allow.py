"""The allowlist of what a model-written section may contain (data for `tex_sanitize`).

Every control sequence of a section must be named here; everything else is removed. The list is the
text-level LaTeX a paper section needs with the packages the templates load (amsmath, amssymb,
booktabs, graphicx, natbib, hyperref, url): nothing here reads or writes a file, defines a macro,
changes a catcode or builds a control-sequence name from text. `\\begin`/`\\end` and
`\\includegraphics` are checked with their arguments (`ENVIRONMENTS`, the host's figure files).
"""

from __future__ import annotations

_WORDS = """
subsection subsubsection paragraph subparagraph
emph textbf textit texttt textrm textsf textsc textsl textup textnormal underline mbox
bfseries itshape ttfamily rmfamily sffamily scshape mdseries upshape normalfont
tiny scriptsize footnotesize small normalsize large Large
cite citep citet citealt citealp Citet Citep Citealt Citealp citeauthor Citeauthor citeyear citeyearpar
ref eqref autoref pageref label
item footnote textsuperscript textsubscript
caption centering toprule midrule bottomrule cmidrule hline cline multicolumn resizebox
linewidth textwidth columnwidth tabularnewline
noindent par newline linebreak smallskip medskip bigskip vspace hspace quad qquad hfill
ldots dots cdots vdots ddots textellipsis
textbackslash textasciitilde textasciicircum textless textgreater textbar textendash textemdash
textbullet textdegree textquoteleft textquoteright textquotedblleft textquotedblright
S P dag ddag copyright pounds LaTeX TeX today
i j o O l L ss ae AE oe OE aa AA u v H c k r t d b
val quoted
alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi
varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega
Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega
frac dfrac tfrac sqrt binom dbinom tbinom left right big Big bigg Bigg bigl bigr Bigl Bigr middle
mathrm mathbf mathit mathsf mathtt mathcal mathbb boldsymbol operatorname text ensuremath
cdot times div pm mp ast star circ bullet oplus ominus otimes odot setminus wedge vee cap cup
leq geq le ge neq ne approx sim simeq cong equiv propto ll gg prec succ preceq succeq
in notin ni subset subseteq supset supseteq mid parallel perp
to rightarrow leftarrow Rightarrow Leftarrow leftrightarrow Leftrightarrow longrightarrow
longleftarrow Longrightarrow mapsto implies iff uparrow downarrow
infty partial nabla forall exists nexists emptyset varnothing ell hbar prime top bot neg lnot
angle triangle Box Diamond checkmark
sum prod int oint lim limsup liminf log ln exp max min sup inf arg det dim sin cos tan tanh
argmax argmin
limits nolimits displaystyle textstyle
langle rangle lfloor rfloor lceil rceil lbrace rbrace lvert rvert lVert rVert vert Vert
hat widehat tilde widetilde bar overline underbrace overbrace vec dot ddot
nonumber notag
"""
# argmax/argmin are not defined by the templates: they stay out (an undefined command is an error)
COMMANDS = frozenset(_WORDS.split()) - {"argmax", "argmin"}

#: control symbols: a backslash and one non-letter
SYMBOLS = frozenset("% & _ # $ { } \\ , ; : ! - / ' ` \" ^ ~ = . | ( ) [ ]".split()) | {" "}

#: environments \begin/\end may name (no filecontents, verbatim, thebibliography, document, ...)
ENVIRONMENTS = frozenset("""
itemize enumerate description table table* tabular figure figure* center flushleft flushright
quote quotation equation equation* align align* gather gather* multline multline* split aligned
gathered cases array matrix pmatrix bmatrix vmatrix Bmatrix Vmatrix smallmatrix
""".split())

#: commands removed as known-dangerous (the message says "forbidden"; any other unknown is "unknown")
FORBIDDEN = frozenset("""
input include includeonly InputIfFileExists IfFileExists endinput openin openout closein closeout
read readline write immediate special write18 csname endcsname expandafter noexpand string
detokenize unexpanded scantokens lowercase uppercase catcode lccode uccode mathcode sfcode
def edef gdef xdef let futurelet global long outer newcommand renewcommand providecommand
DeclareRobustCommand newenvironment renewenvironment makeatletter makeatother usepackage
RequirePackage documentclass bibliography bibliographystyle begin end verb url href
directlua luaexec pdffiledump pdfmdfivesum pdffilesize pdffilemoddate pdfximage pdfobj
pdfliteral pdfstartlink pdfannot pdfinclusioncopyfonts jobname tracingonline message errmessage
shipout output everypar everymath afterassignment aftergroup chardef mathchardef countdef
dimendef toksdef loop repeat newread newwrite
""".split())

#: definitions and stream commands take their target (a name or a stream number) with them
DEFINERS = frozenset("""
def edef gdef xdef let futurelet newcommand renewcommand providecommand DeclareRobustCommand chardef
mathchardef countdef dimendef toksdef newread newwrite
""".split())
STREAMS = frozenset("openin openout closein closeout read readline write immediate".split())

#: what \includegraphics options may hold (width=0.8\linewidth, scale=0.5, ...)
GRAPHICS_OPTION = r"(?:[A-Za-z0-9=.,\s-]|\\(?:linewidth|textwidth|columnwidth)(?![A-Za-z@]))*"
