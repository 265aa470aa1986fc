"""``salesbot push preview|status|rerun DOC``: policy pushes from the command line.

``preview`` is the dry run of what an upload triggers; ``rerun`` runs impact analysis again for the
current version (after the org changed: new reps get theirs, nobody gets one twice); ``status``
shows each push's delivery state and feedback. The queue lives in the database, so ``rerun`` while
``serve`` runs only adds rows the server's worker then sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer

from bot.app import App
from bot.pushes import impact_config, talk_track_writer, trigger_document, user_names
from skills import pushqueue

push_app = typer.Typer(help="政策推送：预览、重新分析、送达状态", no_args_is_help=True)

STATUS_NAMES = {
    "queued": "排队中",
    "sending": "发送中",
    "sent": "已送达",
    "acknowledged": "已反馈",
    "failed": "失败",
}
FEEDBACK_NAMES = {"useful": "有用", "useless": "没用"}


def _echo_json(obj: object) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, default=str))


def register(app: typer.Typer, make_app: Callable[[], App]) -> None:
    app.add_typer(push_app, name="push")

    def run(doc: str, *, dry_run: bool, as_json: bool) -> None:
        application = make_app()
        s = application.settings
        try:
            report = trigger_document(
                application.engine, doc, impact_config(s), dry_run=dry_run, digest=s.push_manager_digest,
                writer=talk_track_writer(s),
            )
        except LookupError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        if as_json:
            _echo_json(report.as_dict())
            return
        names = user_names(application.engine)
        typer.echo(report.summary(names))
        for product in report.impact.products:
            for e in product.evidence:
                typer.echo(f"  · {product.code} {e.score:.2f} {e.section or '—'}：{e.clause[:70]}")
        for item in report.items:
            typer.echo(f"→ {names.get(item.user_id, item.user_id)}（{item.kind}）{item.dedupe_key}")
        if dry_run and report.items:
            typer.echo("\n示例（第一条）：\n" + str(report.items[0].body["text"]))

    @push_app.command("preview")
    def preview(
        doc: Annotated[str, typer.Argument(help="文档 id（kb list）或来源路径")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """演练：这份文档会推送给谁、推送什么（不发送，不写入）。"""
        run(doc, dry_run=True, as_json=as_json)

    @push_app.command("rerun")
    def rerun(
        doc: Annotated[str, typer.Argument(help="文档 id（kb list）或来源路径")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """组织或商机变化后重新分析当前版本：新涉及的代表收到推送，已推送过的不重复。"""
        run(doc, dry_run=False, as_json=as_json)

    @push_app.command("status")
    def status(
        doc: Annotated[str, typer.Argument(help="文档 id；opinion:<事件 id> 查看舆情关怀包")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """每条推送的送达状态、尝试次数和反馈。"""
        application = make_app()
        rows = pushqueue.pushes_for(application.engine, doc)
        if as_json:
            _echo_json(
                [
                    {
                        "id": p.id,
                        "user": p.user_id,
                        "kind": p.kind,
                        "version": p.document_version,
                        "status": p.status,
                        "attempts": p.attempts,
                        "sent_at": p.sent_at,
                        "feedback": p.feedback,
                        "error": p.last_error or None,
                    }
                    for p in rows
                ]
            )
            return
        if not rows:
            typer.echo(f"{doc}：没有推送记录。")
            return
        names = user_names(application.engine)
        counts: dict[str, int] = {}
        for p in rows:
            counts[p.status] = counts.get(p.status, 0) + 1
            sent = f"{p.sent_at:%m-%d %H:%M:%S}" if p.sent_at else "—"
            feedback = FEEDBACK_NAMES.get(p.feedback or "", "—")
            error = f"  错误：{p.last_error}" if p.last_error and p.status != "sent" else ""
            typer.echo(
                f"v{p.document_version} #{p.id} {names.get(p.user_id, p.user_id)}（{p.kind}）"
                f"{STATUS_NAMES.get(p.status, p.status)}，尝试 {p.attempts} 次，送达 {sent}，"
                f"反馈 {feedback}{error}"
            )
        typer.echo("合计：" + "，".join(f"{STATUS_NAMES.get(k, k)} {v}" for k, v in sorted(counts.items())))
