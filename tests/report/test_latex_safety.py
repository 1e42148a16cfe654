"""Model-written LaTeX must never reach a host file: the allowlist sanitizer, and a compile that is
isolated even when something gets past it. Real latexmk/pdflatex and pdftotext throughout."""

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from agentlab.report import write_report
from agentlab.report.latex import compile_pdf, render, sanitize
from tests.report.scripted import Writer, load_ctx, make_llm, make_run, script, sections

FIG = "figures/fig-1.pdf"

# (id, LaTeX with {secret} / {secret_pdf} for the root-only files, what `problems` must name)
ATTACKS = [
    ("input", r"\input{{{secret}}}", r"\input"),
    ("csname", r"\csname input\endcsname{{{secret}}}", r"\csname"),
    ("atat_input", r"\makeatletter\@@input {secret} \makeatother", r"\@@input"),
    ("expandafter", r"\expandafter\input\expandafter{{{secret}}}", r"\expandafter"),
    ("hat_i", r"\^^69nput{{{secret}}}", "^^"),
    ("hat_backslash", r"^^5cinput{{{secret}}}", "^^"),
    ("openin_read", r"\newread\leak \openin\leak={secret} \read\leak to\line \line \closein\leak", r"\openin"),
    ("filecontents", ("\\begin{{filecontents*}}[overwrite]{{leak.tex}}\n\\input{{{secret}}}\n"
                      "\\end{{filecontents*}}\n\\input{{leak}}"), r"\begin{filecontents*}"),
    ("graphics_abs", r"\includegraphics{{{secret_pdf}}}", r"\includegraphics{/"),
    ("graphics_up", r"\includegraphics{{../../{name_pdf}}}", r"\includegraphics{../"),
    ("catcode", "\\catcode`\\|=0 |input{{{secret}}}", r"\catcode"),
    ("def", r"\def\x{{\input}}\x{{{secret}}}", r"\def\x"),
    ("pdffiledump", r"\pdffiledump length 64 {{{secret}}}", r"\pdffiledump"),
    ("joined", r"\in\6put{{{secret}}}", r"\6"),
]
IDS = [a[0] for a in ATTACKS]


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    """A root-only text file and a root-only PDF, both holding a unique marker."""
    marker = "SECRET" + uuid.uuid4().hex[:10].upper()
    d = tmp_path_factory.mktemp("private")
    txt = d / "secret.tex"
    txt.write_text(marker + "\n")
    src = d / "s.tex"
    src.write_text("\\documentclass{article}\\begin{document}" + marker + "\\end{document}\n")
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "s.tex"], cwd=d, capture_output=True, check=True)
    (d / "s.pdf").rename(d / "secret.pdf")
    for p in (txt, d / "secret.pdf"):
        os.chmod(p, 0o600)
    return {"marker": marker, "secret": str(txt), "secret_pdf": str(d / "secret.pdf"), "name_pdf": "secret.pdf"}


def leaked(pdf_text: str, marker: str) -> bool:
    """The marker, or its bytes as hex (\\pdffiledump), anywhere in the text."""
    flat = "".join(pdf_text.split())
    return marker in flat or marker.encode().hex().upper() in flat.upper()


def pdf_text(pdf) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def document(tmp_path, body: str) -> Path:
    """A report directory with main.tex from the project's article template, `body` as its results."""
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    secs = [{"name": "results", "title": "Results", "latex": "CANARYWORD " + body}]
    tex = render("article/main.tex.j2", title="T", revision=1, abstract="Abstract.", sections=secs, tables=[],
                 figures=[], cited=False)
    (out / "main.tex").write_text(tex)
    return out


@pytest.fixture(params=["auto", "off"], ids=["bwrap-if-usable", "no-bwrap"])
def sandbox_mode(request, monkeypatch):
    if request.param == "off":
        monkeypatch.setenv("AGENTLAB_TEX_SANDBOX", "off")
    else:
        monkeypatch.delenv("AGENTLAB_TEX_SANDBOX", raising=False)
    return request.param


# ---- the sanitizer ------------------------------------------------------------------------------

@pytest.mark.parametrize("attack", ATTACKS, ids=IDS)
def test_sanitizer_removes_and_names_every_way_to_read_a_file(attack, secret):
    _, template, named = attack
    clean, problems = sanitize(template.format(**secret))  # no host figures: any \includegraphics goes
    assert any(named in p for p in problems), problems
    for bad in (r"\input", r"\csname", "@@input", "^^", r"\openin", r"\read", "filecontents", r"\catcode",
                r"\def", r"\expandafter", r"\pdffiledump", r"\includegraphics"):
        assert bad not in clean
    assert sanitize(clean) == (clean, [])  # stable: nothing left to remove


def test_sanitizer_keeps_what_a_section_needs():
    latex = (r"\subsection{Setup} We follow \citet{park2023linear} and \citep[p.~2]{a,b}; see Table~\ref{tab:t1}"
             r" and \autoref{fig:f1}. \emph{Note}: $\alpha \leq \frac{1}{2}\sqrt{\beta}$, $\left(x \cdot y\right)"
             r" \approx \mathbf{z}_{i}^{2}$, 50\% \& more\_here \{x\}\,\quad a\\ b \ldots\textsuperscript{a}"
             "\n\\begin{itemize}\\item one\\end{itemize}\\begin{table}[t]\\centering\\small\\caption{C}"
             r"\begin{tabular}{lr}\toprule a & b \\ \midrule \multicolumn{2}{c}{x} \\ \bottomrule\end{tabular}"
             r"\end{table}\footnote{F.} \val[2]{seeds:h2o:ppl} \quoted{k}{x} \includegraphics[width=0.8\linewidth]{" + FIG + "}")
    assert sanitize(latex, [FIG]) == (latex, [])
    for name in ("abstract", "introduction", "results", "discussion"):
        assert sanitize(sections()[name], [FIG])[1] == []


def test_sanitizer_drops_unknown_macros_links_and_comments():
    clean, problems = sanitize("A \\kvbudgetsweep{} B \\url{http://x.org/a_b} \\href{file:///etc/x}{here}"
                               " % \\input{/etc/passwd}\nC", [])
    assert clean == r"A {} B \texttt{http://x.org/a\_b} {here} C"
    assert problems[0] == r"removed unknown command \kvbudgetsweep" and len(problems) == 3


# ---- through write_report (what a user sees) ----------------------------------------------------

def test_attack_sections_never_reach_the_pdf_through_write_report(srv, tmp_path, secret):
    attacks = [template.format(**secret) for _, template, _ in ATTACKS]
    names = ["introduction", "related_work", "method", "experimental_setup", "results", "discussion"]
    drafts = {n: [sections()[n] + "\n\nThe CANARY" + n.upper() + " word stays.\n\n" + " ".join(attacks[i::len(names)])]
              for i, n in enumerate(names)}
    drafts["conclusion"] = [sections()["conclusion"] + r" The \kvbudgetsweep{} is small."]
    writer = script(srv, Writer(drafts=drafts))
    llm, s = make_llm(srv, tmp_path, report_fix_rounds=0)
    run = make_run(tmp_path)
    out = write_report(load_ctx(), s, llm, run, lambda m: None)
    text = pdf_text(run.repo_dir / out["pdf"])
    assert not leaked(text, secret["marker"])
    assert sum(f"CANARY{n.upper()}" in text for n in names) >= 3  # what the sanitizer left was compiled
    joined = "\n".join(out["problems"])
    for _, _, named in ATTACKS:
        assert named in joined, named
    assert r"conclusion: removed unknown command \kvbudgetsweep" in out["problems"]
    assert writer.seen and out["compiled"]
    if os.geteuid() == 0:  # as root the compile runs as the sandbox uid
        from agentlab.report.tex_compile import sandbox_uid
        assert f"uid {sandbox_uid()}" in out["latex_isolation"]


def test_a_normal_section_with_math_table_citation_and_figure_still_renders(srv, tmp_path):
    results = (sections()["results"] + r" The score is $\alpha \cdot \frac{\gamma}{\delta} \leq \beta$ \citet{park2023linear}."
               "\n\\begin{table}[h]\\centering\\caption{Handmade}\\begin{tabular}{ll}\\toprule"
               r" method & verdict \\ \midrule eviction & keeps quality \\ \bottomrule\end{tabular}\end{table}"
               "\n\\begin{figure}[h]\\centering\\includegraphics[width=0.5\\linewidth]{" + FIG + "}"
               r"\caption{The host figure again.}\end{figure}")
    script(srv, Writer(drafts={"results": [results]}))
    llm, s = make_llm(srv, tmp_path)
    run = make_run(tmp_path)
    out = write_report(load_ctx(), s, llm, run, lambda m: None)
    assert out["compiled"] and out["problems"] == []
    tex = (run.repo_dir / "report" / "main.tex").read_text()
    assert r"\includegraphics[width=0.5\linewidth]{figures/fig-1.pdf}" in tex and r"\frac{\gamma}{\delta}" in tex
    text = " ".join(pdf_text(run.repo_dir / out["pdf"]).split())
    for words in ("keeps quality", "The host figure again.", "The linear representation hypothesis", "14.24"):
        assert words in text


# ---- the compile alone: what the sandbox stops when the sanitizer is bypassed ---------------------

RAW = ["input", "csname", "atat_input", "hat_i", "openin_read", "filecontents", "graphics_abs", "catcode",
       "pdffiledump"]


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a[0] in RAW], ids=RAW)
def test_compile_stops_a_read_that_got_past_the_sanitizer(attack, tmp_path, secret, sandbox_mode):
    body = attack[1].format(**secret)
    report = document(tmp_path, body)
    res = compile_pdf(report, 120)
    if res.ok:
        text = pdf_text(res.pdf)
        assert "CANARYWORD" in text and not leaked(text, secret["marker"])
    else:
        assert secret["marker"] not in res.log_excerpt


def test_compile_sees_only_the_reports_own_files(tmp_path, secret, sandbox_mode):
    report = document(tmp_path, r"\input{leak}\input{tables/leak2}")
    (report / "leak.tex").symlink_to(secret["secret"])
    (report / "tables").mkdir()
    (report / "tables" / "leak2.tex").symlink_to(secret["secret"])
    (report / "notes.txt").write_text("not a report source")
    res = compile_pdf(report, 120)
    assert not res.ok or not leaked(pdf_text(res.pdf), secret["marker"])
    assert secret["marker"] not in res.log_excerpt


@pytest.fixture
def world_dir():
    """A world-writable directory outside the test's private tmp_path (which the sandbox uid cannot reach)."""
    d = Path(tempfile.mkdtemp(prefix="agentlab-test-"))
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_shell_escape_and_writes_outside_the_build_dir_do_not_happen(tmp_path, world_dir, sandbox_mode):
    shell = ("\\immediate\\write18{echo SHELLRAN > shellout.tex; touch " + str(world_dir / "pwned") + "}"
             "\\InputIfFileExists{shellout.tex}{}{}")
    res = compile_pdf(document(tmp_path, shell), 120)
    assert res.ok and "SHELLRAN" not in pdf_text(res.pdf) and "CANARYWORD" in pdf_text(res.pdf)
    for body in ("\\immediate\\openout5=" + str(world_dir / "written.tex") + " \\immediate\\write5{x}"
                 "\\immediate\\closeout5 ", '\\input|"touch ' + str(world_dir / "piped") + '" '):
        compile_pdf(document(tmp_path, body), 120)
    assert list(world_dir.iterdir()) == []


def test_compile_stops_reading_a_world_readable_file_by_absolute_path(tmp_path, world_dir, sandbox_mode):
    """Not the uid's file permissions: kpathsea's paranoid mode and the bwrap view stop this one."""
    public = world_dir / "public.tex"
    public.write_text("PUBLICMARKER\n")
    os.chmod(public, 0o644)
    for body in (f"\\input{{{public}}}", f"\\pdffiledump length 12 {{{public}}}"):
        res = compile_pdf(document(tmp_path, body), 120)
        assert not res.ok or not leaked(pdf_text(res.pdf), "PUBLICMARKER")


def test_the_sandbox_runs_unprivileged_and_sees_no_host_files(world_dir, secret, sandbox_mode):
    from agentlab.report.tex_compile import _chown_tree, bwrap_args, sandbox_uid, sandboxed

    uid = sandbox_uid()
    build, home = world_dir / "build", world_dir / "home"
    build.mkdir()
    home.mkdir()
    if uid is not None:
        _chown_tree(world_dir, os.getuid(), uid, uid)
    script_ = f"id -u; cat {secret['secret']} 2>&1; kpsewhich -var-value=openin_any; echo made > ok.txt"
    cmd, kw, isolation = sandboxed(["/bin/sh", "-c", script_], build, home, uid)
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, **kw)
    lines = proc.stdout.split()
    assert lines[0] == str(uid if uid is not None else os.getuid()) and "p" in lines
    assert (build / "ok.txt").exists()
    bwrap = isolation.startswith("bwrap")
    if uid is not None or bwrap:  # (a non-root host without bwrap has only kpathsea's paranoid mode)
        assert secret["marker"] not in proc.stdout + proc.stderr
    if uid is not None:
        assert uid != 0 and f"uid {uid}" in isolation
    assert bwrap == (sandbox_mode == "auto" and bwrap_args(uid) is not None)
    if bwrap:
        cmd, kw, _ = sandboxed(["/bin/sh", "-c", "ls /root /home /work; touch /usr/x; echo hi > /tmp/y"],
                               build, home, uid)
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, **kw)
        assert proc.stderr.count("No such file") >= 2 and "Read-only" in proc.stderr


@pytest.mark.parametrize("template", ["article", "conference"])
def test_every_allowed_command_and_environment_exists_in_the_templates(tmp_path, template):
    from agentlab.report import tex_allow

    checks = "".join(f"\\ifdefined\\{c}\\else\\errmessage{{undefined command {c}}}\\fi\n"
                     for c in sorted(tex_allow.COMMANDS))
    checks += "".join(f"\\ifcsname {e}\\endcsname\\else\\errmessage{{undefined environment {e}}}\\fi\n"
                      for e in sorted(tex_allow.ENVIRONMENTS))
    out = tmp_path / "report"
    out.mkdir()
    for sty in (Path(__file__).resolve().parents[2] / "templates" / template).glob("*.sty"):
        shutil.copy(sty, out / sty.name)
    secs = [{"name": "results", "title": "Results", "latex": checks + "CANARYWORD"}]
    (out / "main.tex").write_text(render(f"{template}/main.tex.j2", title="T", revision=1, abstract="A.",
                                         sections=secs, tables=[], figures=[], cited=False))
    res = compile_pdf(out, 120)
    assert res.ok, res.log_excerpt


def test_a_compile_that_never_ends_is_killed_with_everything_it_started(tmp_path, monkeypatch, sandbox_mode):
    from agentlab.report import tex_compile

    made = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tex_compile.tempfile, "mkdtemp", lambda **kw: made.append(real(**kw)) or made[-1])
    res = compile_pdf(document(tmp_path, r"\def\spin{\spin}\spin"), 3)
    assert not res.ok and "took longer than 3 s" in res.log_excerpt
    assert made and not os.path.exists(made[0])
    left = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if made[0].encode() in (proc / "cmdline").read_bytes() or made[0] in os.readlink(proc / "cwd"):
                left.append(proc.name)
        except OSError:
            continue
    assert left == []


def test_the_writer_cannot_use_the_placeholder_macro_to_hide_a_typed_number():
    """`\\agentlabnum` prints NUM in the check build: only code may emit it, so a section's is removed."""
    clean, problems = sanitize(r"We reach \agentlabnum{41.3} perplexity.", [])
    assert "agentlabnum" not in clean and any("agentlabnum" in p for p in problems)
