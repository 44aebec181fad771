"""UI text in English and Chinese: `t(key, lang, **values)`, `error_text`, `count`, `local_time`.

Every key has both languages (a test checks it). Values are `str.format` templates.
A missing key falls back to English, then to `default`, then to the key itself, so a
typo shows up as visible text instead of crashing the page. Errors from `agent/` are
worded by their code (agent/app/_wording.py); one without a known code shows its
library message. Text for Markdown elements goes through `md`, which escapes the
values (a file name such as `__init__.pdf` must not turn bold).
"""

from __future__ import annotations

import re
import string
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.app._wording import ERRORS, FIELD_HELP

_INLINE = re.compile(r"([\\`*_\[\]<>~$|])")  # what formats text anywhere in a line
_LINE_START = re.compile(r"^(\s*)(?:([#+-])(?=\s|$)|(>)|(\d+)([.)])(?=\s|$))")  # list, heading, quote markers


def md_literal(text: str) -> str:
    """`text` shown literally in Markdown: inline markers escaped, and a line-start marker
    (#, >, -, "1.") too; other punctuation is left alone so the Markdown source stays readable."""
    return _LINE_START.sub(_escape_marker, _INLINE.sub(r"\\\1", str(text)))


def _escape_marker(match: re.Match[str]) -> str:
    indent, bullet, quote, number, dot = match.groups()
    return f"{indent}{number}\\{dot}" if number else f"{indent}\\{bullet or quote}"

LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}

STRINGS: dict[str, dict[str, str]] = {
    # ---- app and navigation
    "language": {"en": "Language", "zh": "语言"},
    "page_chat": {"en": "Chat", "zh": "对话"},
    "page_documents": {"en": "Documents", "zh": "文档"},
    "page_settings": {"en": "Settings", "zh": "设置"},
    # ---- sidebar status
    "status_ollama_ok": {"en": ":green[:material/check_circle:] Ollama {version} at `{host}`",
                         "zh": ":green[:material/check_circle:] Ollama {version}（`{host}`）"},
    "status_ollama_absent": {"en": "Ollama is not running at `{host}`, so the offline demo model answers. "
                                   "For real answers start Ollama (`ollama serve`); this notice goes away by itself.",
                             "zh": "Ollama（`{host}`）没有运行，所以由离线演示模型回答。要获得可靠的回答，请启动 Ollama"
                                   "（`ollama serve`）；启动后此提示会自动消失。"},
    "status_ollama_off_forced": {"en": "Backend: embedded offline model (Ollama not used).",
                                 "zh": "后端：内置离线模型（不使用 Ollama）。"},
    "status_model": {"en": "Chat model: {model} · {mode}", "zh": "对话模型：{model} · {mode}"},
    "mode_agent": {"en": "agent mode: the model searches when it needs to", "zh": "智能体模式：模型按需检索"},
    "mode_always_retrieve": {"en": "searches before every answer", "zh": "每次回答前检索"},
    "tools_short": {"en": "tools", "zh": "工具"},
    "no_tools_short": {"en": "no tools", "zh": "无工具"},
    "status_embedding": {"en": "Embeddings: {model}", "zh": "向量模型：{model}"},
    "status_collections": {"en": "Chat collections: {names}", "zh": "对话使用的文档集：{names}"},
    "demo_notice": {"en": "Offline demo model: a tiny model (SmolLM2, 135M) answers, often weakly or wrongly. "
                          "For real answers install Ollama, run `ollama serve` and `ollama pull llama3.2`.",
                    "zh": "离线演示模型：由一个很小的模型（SmolLM2，1.35 亿参数）回答，质量有限，经常出错。"
                          "要获得可靠的回答，请安装 Ollama，运行 `ollama serve` 和 `ollama pull llama3.2`。"},
    "demo_answer_note": {"en": "Written by the offline demo model: check it against the sources.",
                         "zh": "此回答由离线演示模型生成：请对照来源核实。"},
    "pinned_by": {"en": "Set by the environment variable {var}; unset it to change this here.",
                  "zh": "由环境变量 {var} 设定；取消该变量后才能在此修改。"},
    # ---- chat
    "ask_placeholder": {"en": "Ask a question about your documents…", "zh": "就你的文档提一个问题……"},
    "busy": {"en": "An answer is still running: wait for it or stop it.", "zh": "仍在回答中：请等待或停止。"},
    "chat_model": {"en": "Chat model", "zh": "对话模型"},
    "chat_model_help": {"en": "Installed Ollama models; saved to the settings.",
                        "zh": "已安装的 Ollama 模型；选择会保存到设置。"},
    "model_not_installed": {"en": "{model} (not installed)", "zh": "{model}（未安装）"},
    "download_model": {"en": "Download {model}", "zh": "下载 {model}"},
    "model_embedded_forced": {"en": "The embedded offline model answers (backend: embedded).",
                              "zh": "由内置离线模型回答（后端：embedded）。"},
    "models_unavailable": {"en": "Cannot list the models: Ollama is not reachable.",
                           "zh": "无法列出模型：Ollama 无法连接。"},
    "no_models": {"en": "No chat model is installed in Ollama at `{host}`: download one on the Settings page.",
                  "zh": "Ollama（`{host}`）中没有安装对话模型：请在设置页下载一个。"},
    "refresh_models": {"en": "Refresh", "zh": "刷新"},
    "chat_collections": {"en": "Collections to search", "zh": "检索的文档集"},
    "chat_collections_help": {"en": "The chat answers from the documents of these collections.",
                              "zh": "对话会根据这些文档集中的文档回答。"},
    "need_one_collection": {"en": "Pick at least one collection.", "zh": "请至少选择一个文档集。"},
    "conversations": {"en": "Conversations", "zh": "对话记录"},
    "new_conversation": {"en": "New conversation", "zh": "新对话"},
    "show_all": {"en": "Show all", "zh": "显示全部"},
    "search_conversations": {"en": "Search conversations", "zh": "搜索对话"},
    "no_conversation_found": {"en": "No conversation has that in its title.", "zh": "没有标题包含该内容的对话。"},
    "today": {"en": "Today", "zh": "今天"},
    "yesterday": {"en": "Yesterday", "zh": "昨天"},
    "choose": {"en": "Choose", "zh": "请选择"},
    "copy": {"en": "Copy", "zh": "复制"},
    "copied": {"en": "Copied", "zh": "已复制"},
    "cancel": {"en": "Cancel", "zh": "取消"},
    "offer_collection": {"en": "The chat does not search “{name}” yet.", "zh": "对话还没有检索“{name}”。"},
    "offer_collection_yes": {"en": "Search it in the chat too", "zh": "在对话中也检索它"},
    "offer_collection_no": {"en": "Not now", "zh": "暂不"},
    "note_prompt_truncated": {"en": "Ollama cut the start of the prompt to fit its context window ({window} tokens): "
                                    "the model may not have read the instructions or the first excerpts. Raise the "
                                    "context window (num_ctx) or lower the excerpts per question in Settings.",
                              "zh": "Ollama 为了放进上下文长度（{window} 个词元）截掉了提示词的开头：模型可能没有读到指令或"
                                    "前面的摘录。请在设置中调大上下文长度（num_ctx），或减少每个问题的检索片段数。"},
    "note_invalid_citations": {"en": "The answer cites {markers}, but no excerpt has that number: it is not a "
                                     "citation. Check the claim against the sources below.",
                               "zh": "回答引用了 {markers}，但没有这个编号的摘录：它不是有效的引用。请对照下方来源核实该说法。"},
    "note_nothing_found": {"en": "Nothing relevant was found in the documents the chat searches, so this answer is "
                                 "not grounded in them. Add documents on the Documents page or rephrase the question.",
                           "zh": "在对话检索的文档中没有找到相关内容，因此这个回答没有文档依据。请在“文档”页添加文档，或换个说法提问。"},
    "note_weak_match": {"en": "The excerpts found share no word with the question: they may not answer it. Check "
                              "the sources, or rephrase the question with words the documents use.",
                        "zh": "找到的摘录与问题没有共同的词：它们可能并不能回答这个问题。请核对来源，或用文档中的说法重新提问。"},
    "cited": {"en": "cited", "zh": "已引用"},
    "status_rewrite": {"en": "Rewriting the question with the conversation", "zh": "结合上下文改写问题"},
    "status_search": {"en": "Searching the documents", "zh": "正在检索文档"},
    "status_read_one": {"en": "The model is reading {n} excerpt", "zh": "模型正在阅读 {n} 段摘录"},
    "status_read": {"en": "The model is reading {n} excerpts", "zh": "模型正在阅读 {n} 段摘录"},
    "manage_conversation": {"en": "Rename, export, delete", "zh": "重命名、导出、删除"},
    "title": {"en": "Title", "zh": "标题"},
    "rename": {"en": "Rename", "zh": "重命名"},
    "export_markdown": {"en": "Export as Markdown", "zh": "导出为 Markdown"},
    "delete_warning": {"en": "Deleting removes the conversation and all its answers.",
                       "zh": "删除会移除该对话及其全部回答。"},
    "delete_conversation": {"en": "Delete conversation", "zh": "删除对话"},
    "no_documents": {"en": "No documents yet: add PDFs on the Documents page, then ask about them.",
                     "zh": "还没有文档：请先在“文档”页添加 PDF，再提问。"},
    "go_documents": {"en": "Go to Documents", "zh": "前往文档页"},
    "stop": {"en": "Stop", "zh": "停止"},
    "stopping": {"en": "Stopping…", "zh": "正在停止……"},
    "stopping_wait": {"en": "Stopping: the model is finishing its current step… {seconds} s. "
                            "The partial answer is kept, marked incomplete.",
                      "zh": "正在停止：模型正在结束当前步骤…… {seconds} 秒。已保留部分回答，并标记为不完整。"},
    "thinking": {"en": "Waiting for the model", "zh": "等待模型"},
    "waiting": {"en": "{status}… {seconds} s", "zh": "{status}…… {seconds} 秒"},  # status texts have no ellipsis
    "answer_incomplete": {"en": "Incomplete answer: {error}", "zh": "回答不完整：{error}"},
    "sources_n": {"en": "Sources ({n})", "zh": "来源（{n}）"},
    "page_short": {"en": "p. {page}", "zh": "第 {page} 页"},
    "page_labelled": {"en": "p. {label} (PDF page {page})", "zh": "第 {label} 页（PDF 第 {page} 页）"},
    "show_page": {"en": "Show the page", "zh": "显示该页"},
    "page_unavailable": {"en": "The stored PDF is no longer in the collection.", "zh": "文档集中已没有该 PDF。"},
    "page_render_failed": {"en": "Cannot render the page: {error}", "zh": "无法渲染该页：{error}"},
    # ---- documents
    "collection": {"en": "Collection", "zh": "文档集"},
    "collection_help": {"en": "Uploads go to this collection. The chat searches: {names}.",
                        "zh": "上传的文件会加入此文档集。对话检索：{names}。"},
    "new_collection": {"en": "New collection", "zh": "新建文档集"},
    "collection_name": {"en": "Name", "zh": "名称"},
    "new_collection_placeholder": {"en": "letters, digits, - _ .", "zh": "字母、数字、- _ ."},
    "create": {"en": "Create", "zh": "创建"},
    "collection_created": {"en": "Collection “{name}” created.", "zh": "已创建文档集 “{name}”。"},
    "delete_collection": {"en": "Delete collection", "zh": "删除文档集"},
    "delete_collection_warning": {"en": "This deletes “{name}”: its index and its stored copies of the PDFs "
                                        "(your original files are not touched).",
                                  "zh": "将删除 “{name}”：包括索引及其保存的 PDF 副本（不影响你的原始文件）。"},
    "delete_collection_confirm": {"en": "Delete “{name}”", "zh": "删除 “{name}”"},
    "collection_deleted": {"en": "Collection “{name}” deleted.", "zh": "已删除文档集 “{name}”。"},
    "upload_label": {"en": "Add PDF files", "zh": "添加 PDF 文件"},
    "upload_button": {"en": "Choose files", "zh": "选择文件"},
    "upload_note": {"en": "or drop them here · PDF, up to {mb} MB each", "zh": "或拖放到这里 · PDF，每个不超过 {mb} MB"},
    "upload_help": {"en": "Several PDFs at once, up to {mb} MB each; they are added to “{name}”.",
                    "zh": "可一次上传多个 PDF，每个不超过 {mb} MB；将加入 “{name}”。"},
    "upload_cap_note": {"en": "The web server accepts files up to {mb} MB (server.maxUploadSize in "
                              ".streamlit/config.toml); use `python -m agent ingest` for larger ones.",
                        "zh": "网页服务器最多接受 {mb} MB 的文件（.streamlit/config.toml 中的 server.maxUploadSize）；"
                              "更大的文件请用 `python -m agent ingest`。"},
    "stage_queued": {"en": "Waiting…", "zh": "等待中……"},
    "stage_parse": {"en": "Reading pages", "zh": "读取页面"},
    "stage_ocr": {"en": "OCR of scanned pages", "zh": "扫描页文字识别（OCR）"},
    "stage_embed": {"en": "Embedding chunks", "zh": "生成向量"},
    "stage_index": {"en": "Indexing", "zh": "写入索引"},
    "stage_done": {"en": "Done", "zh": "完成"},
    "stage_failed": {"en": "Failed", "zh": "失败"},
    "n_pages_one": {"en": "{n} page", "zh": "{n} 页"},
    "n_pages": {"en": "{n} pages", "zh": "{n} 页"},
    "n_chunks_one": {"en": "{n} chunk", "zh": "{n} 个片段"},
    "n_chunks": {"en": "{n} chunks", "zh": "{n} 个片段"},
    "result_added": {"en": "{file}: added, {pages}, {chunks}{ocr}, {seconds} s",
                     "zh": "{file}：已添加，{pages}，{chunks}{ocr}，用时 {seconds} 秒"},
    "result_replaced": {"en": "{file}: replaced the older version, {pages}, {chunks}{ocr}, {seconds} s",
                        "zh": "{file}：已替换旧版本，{pages}，{chunks}{ocr}，用时 {seconds} 秒"},
    "result_unchanged": {"en": "{file}: already indexed ({pages}, {chunks})",
                         "zh": "{file}：已在索引中（{pages}，{chunks}）"},
    "result_failed": {"en": "{file}: not added.", "zh": "{file}：未添加。"},
    "result_ocr_one": {"en": ", OCR on {n} page", "zh": "，{n} 页经过 OCR"},
    "result_ocr": {"en": ", OCR on {n} pages", "zh": "，{n} 页经过 OCR"},
    "needs_password": {"en": "{file} is encrypted: enter its password to add it.",
                       "zh": "{file} 已加密：请输入密码后再添加。"},
    "password": {"en": "PDF password", "zh": "PDF 密码"},
    "ask_again": {"en": "Ask again", "zh": "重新提问"},
    "load_earlier": {"en": "Load earlier turns ({n} more)", "zh": "加载更早的对话（还有 {n} 轮）"},
    "retry_password": {"en": "Add with this password", "zh": "使用此密码添加"},
    "wrong_password": {"en": "That password does not open the PDF.", "zh": "该密码无法打开此 PDF。"},
    "clear_results": {"en": "Clear the list", "zh": "清空列表"},
    "documents_in": {"en": "Documents in “{name}” ({n})", "zh": "“{name}” 中的文档（{n}）"},
    "no_documents_here": {"en": "No documents in this collection yet.", "zh": "此文档集中还没有文档。"},
    "col_file": {"en": "File", "zh": "文件"},
    "col_pages": {"en": "Pages", "zh": "页数"},
    "col_chunks": {"en": "Chunks", "zh": "片段"},
    "col_ocr": {"en": "OCR pages", "zh": "OCR 页数"},
    "col_size": {"en": "Size (MB)", "zh": "大小（MB）"},
    "col_added": {"en": "Added", "zh": "添加时间"},
    "col_id": {"en": "Id", "zh": "编号"},
    "select_documents": {"en": "Documents to delete", "zh": "要删除的文档"},
    "delete_documents": {"en": "Delete", "zh": "删除"},
    "delete_documents_warning": {"en": "This removes {files} from the collection: its excerpts and its stored copy "
                                       "(your original files are not touched).",
                                 "zh": "将从文档集中移除 {files}：包括其片段和保存的副本（不影响你的原始文件）。"},
    "delete_documents_confirm": {"en": "Delete ({n})", "zh": "确认删除（{n}）"},
    "documents_deleted": {"en": "Deleted: {files}", "zh": "已删除：{files}"},
    "reindex": {"en": "Re-index the collection", "zh": "重建索引"},
    "reindex_help": {"en": "Re-index after changing the embedding model or chunk size, or if the index is damaged; "
                           "it rebuilds from the stored PDFs.",
                     "zh": "更改向量模型或分块大小后，或索引损坏时，请重建索引；将根据保存的 PDF 重新生成。"},
    "reindexing": {"en": "Re-indexing “{name}”…", "zh": "正在重建 “{name}” 的索引……"},
    "reindexed": {"en": "Re-indexed {ok} of {n} documents in “{name}”.",
                  "zh": "已重建 “{name}” 中 {n} 个文档里的 {ok} 个。"},
    "reindex_failed": {"en": "Re-indexing failed", "zh": "重建索引失败"},
    "reindex_running": {"en": "A re-index of “{name}” is running.", "zh": "“{name}” 正在重建索引。"},
    "reindex_stopped": {"en": "Re-indexing “{name}” was stopped; nothing was changed.",
                        "zh": "已停止重建 “{name}” 的索引；没有任何改动。"},
    "reindex_nothing_committed": {
        "en": "Nothing was changed in “{name}”: {n} document(s) cannot be re-indexed with the current settings and "
              "their old index cannot be kept (it is damaged or was built with another embedding model). Give the "
              "password, change the settings that refuse them, or leave them out.",
        "zh": "“{name}” 没有任何改动：有 {n} 个文档无法按当前设置重建索引，且无法保留其旧索引（旧索引已损坏或由其他向量模型生成）。"
              "请提供密码、修改拒绝它们的设置，或将它们排除。"},
    "reindex_drop_failed": {"en": "Re-index without the failing documents", "zh": "排除失败的文档后重建索引"},
    "reindex_with_password": {"en": "Re-index {file} with this password", "zh": "使用此密码重建 {file}"},
    "reindex_needs_password": {"en": "{file} is encrypted: enter its password to re-index it (it is not stored).",
                               "zh": "{file} 已加密：请输入密码以重建其索引（密码不会被保存）。"},
    "result_reindexed": {"en": "{file}: re-indexed, {pages}, {chunks}{ocr}, {seconds} s",
                         "zh": "{file}：已重建，{pages}，{chunks}{ocr}，用时 {seconds} 秒"},
    "result_kept": {"en": "{file}: kept its previous index (still searchable).",
                    "zh": "{file}：保留了原有索引（仍可检索）。"},
    "result_dropped": {"en": "{file}: left out of the index.", "zh": "{file}：已从索引中排除。"},
    "result_not_reindexed": {"en": "{file}: cannot be re-indexed.", "zh": "{file}：无法重建索引。"},
    "result_untouched": {"en": "{file}: unchanged.", "zh": "{file}：未改动。"},
    "dismiss": {"en": "Dismiss", "zh": "关闭"},
    "job_stopped": {"en": "Stopped; nothing was added.", "zh": "已停止；未添加任何内容。"},
    "job_other_session": {"en": "(started in another window)", "zh": "（在另一个窗口中启动）"},
    # ---- settings
    "settings_intro": {"en": "Saved to {path}. Changes take effect on the next question.",
                       "zh": "保存到 {path}。修改会在下一个问题时生效。"},
    "pinned_note": {"en": "Set by environment variables (read-only here): {vars}",
                    "zh": "由环境变量设定（此处只读）：{vars}"},
    "tab_model": {"en": "Model", "zh": "模型"},
    "tab_retrieval": {"en": "Documents & retrieval", "zh": "文档与检索"},
    "tab_prompts": {"en": "Prompts", "zh": "提示词"},
    "tab_language": {"en": "Language", "zh": "语言"},
    "num_ctx_too_big": {"en": "The context window ({num_ctx}) is larger than `{model}` supports ({limit} tokens): "
                              "Ollama uses at most {limit}.",
                        "zh": "上下文长度（{num_ctx}）超过了 `{model}` 支持的 {limit} 个词元：Ollama 最多只会使用 {limit}。"},
    # ---- settings: models
    "models_title": {"en": "Ollama models", "zh": "Ollama 模型"},
    "no_models_installed": {"en": "No model is installed in Ollama at `{host}` yet.",
                            "zh": "Ollama（`{host}`）中还没有安装模型。"},
    "col_model": {"en": "Model", "zh": "模型"},
    "col_params": {"en": "Parameters", "zh": "参数量"},
    "col_size_gb": {"en": "Size (GB)", "zh": "大小（GB）"},
    "col_context": {"en": "Context (tokens)", "zh": "上下文（词元）"},
    "col_abilities": {"en": "Can", "zh": "能力"},
    "col_loaded": {"en": "Loaded", "zh": "已加载"},
    "ability_completion": {"en": "chat", "zh": "对话"},
    "ability_tools": {"en": "tools", "zh": "工具"},
    "ability_thinking": {"en": "thinking", "zh": "思考"},
    "ability_embedding": {"en": "embeddings", "zh": "向量"},
    "ability_vision": {"en": "images", "zh": "图像"},
    "loaded_until": {"en": "{context} tokens, until {until}", "zh": "{context} 词元，保留至 {until}"},
    "pull_label": {"en": "Download a model", "zh": "下载模型"},
    "pull_help": {"en": "A name from ollama.com/library, e.g. llama3.2 or qwen3:4b.",
                  "zh": "ollama.com/library 上的名称，例如 llama3.2 或 qwen3:4b。"},
    "pull_button": {"en": "Download", "zh": "下载"},
    "pull_progress": {"en": "{model}: {stage} {done} of {total}", "zh": "{model}：{stage} {done} / {total}"},
    "pull_stage_manifest": {"en": "looking it up…", "zh": "正在查找……"},
    "pull_stage_download": {"en": "downloading", "zh": "正在下载"},
    "pull_stage_verify": {"en": "checking the download…", "zh": "正在校验……"},
    "pull_stage_write": {"en": "installing…", "zh": "正在安装……"},
    "pull_stage_done": {"en": "done", "zh": "完成"},
    "pull_done": {"en": "{model} is downloaded and ready.", "zh": "{model} 已下载，可以使用。"},
    "pull_cancelled": {"en": "The download of {model} was cancelled.", "zh": "已取消下载 {model}。"},
    "delete_model": {"en": "Delete a model", "zh": "删除模型"},
    "delete_model_which": {"en": "Model", "zh": "模型"},
    "delete_model_warning": {"en": "This deletes `{model}` from Ollama (its files on the server's disk); you can "
                                   "download it again later.",
                             "zh": "将从 Ollama 中删除 `{model}`（服务器磁盘上的模型文件）；之后可以重新下载。"},
    "delete_model_confirm": {"en": "Delete {model}", "zh": "删除 {model}"},
    "model_deleted": {"en": "{model} was deleted.", "zh": "已删除 {model}。"},
    "placeholders": {"en": "Must keep: {required}. May use: {optional}. Write literal braces as {{{{ }}}}.",
                     "zh": "必须保留：{required}。可以使用：{optional}。字面花括号请写成 {{{{ }}}}。"},
    "none": {"en": "none", "zh": "无"},
    "save": {"en": "Save", "zh": "保存"},
    "saved": {"en": "Saved ({fields}). Takes effect on the next question.",
              "zh": "已保存（{fields}）。将在下一个问题时生效。"},
    "reindex_needed": {"en": " Re-index your collections on the Documents page to use the new embedding or chunking.",
                       "zh": " 请在“文档”页重建索引，以使用新的向量模型或分块设置。"},
    "reindex_note": {"en": "Changing the embedding model or chunking needs a re-index (Documents page).",
                     "zh": "更改向量模型或分块设置后需要重建索引（在“文档”页）。"},
    "no_changes": {"en": "Nothing changed.", "zh": "没有修改。"},
    "settings_file_unreadable": {"en": "{path} is unreadable ({error}); using the defaults.",
                                 "zh": "{path} 无法读取（{error}）；正在使用默认设置。"},
    "settings_value_dropped": {"en": "The stored setting `{field}` is not valid ({error}); using its default.",
                               "zh": "保存的设置 `{field}` 无效（{error}）；正在使用其默认值。"},
    "settings_problem_fix": {"en": " Saving this page rewrites the file without it.",
                             "zh": " 在本页保存即可用有效的值重写该文件。"},
    "nothing_saved": {"en": "Nothing was saved.", "zh": "未保存任何内容。"},
    "prompt_invalid": {"en": "{field} is not valid: {error}", "zh": "{field} 无效：{error}"},
    "reset_defaults": {"en": "Reset to defaults", "zh": "恢复默认设置"},
    "reset_warning": {"en": "All settings and prompts go back to their defaults (values set by environment "
                            "variables stay).",
                      "zh": "所有设置和提示词都将恢复默认值（环境变量设定的值不变）。"},
    "reset_confirm": {"en": "Reset everything", "zh": "全部恢复默认"},
    "reset_done": {"en": "Settings reset to the defaults.", "zh": "已恢复默认设置。"},
    "field_data_dir": {"en": "Data folder", "zh": "数据目录"},
    "field_collections": {"en": "Chat collections", "zh": "对话检索的文档集"},
    "field_connect_retries": {"en": "Connection attempts", "zh": "连接尝试次数"},
    "field_max_ocr_pages": {"en": "Most pages OCR'd per file", "zh": "每个文件最多 OCR 页数"},
    "field_ollama_host": {"en": "Ollama host", "zh": "Ollama 地址"},
    "field_backend": {"en": "Backend", "zh": "后端"},
    "field_chat_model": {"en": "Chat model", "zh": "对话模型"},
    "field_mode": {"en": "Mode", "zh": "模式"},
    "field_keep_alive": {"en": "Keep alive", "zh": "模型保留时间（keep_alive）"},
    "field_request_timeout": {"en": "Request timeout (s)", "zh": "请求超时（秒）"},
    "field_temperature": {"en": "Temperature", "zh": "温度"},
    "field_num_ctx": {"en": "Context window (num_ctx)", "zh": "上下文长度（num_ctx）"},
    "field_num_predict": {"en": "Max answer tokens (num_predict)", "zh": "最大回答长度（num_predict）"},
    "field_repeat_penalty": {"en": "Repeat penalty", "zh": "重复惩罚"},
    "field_memory_turns": {"en": "Memory (turns)", "zh": "记忆轮数"},
    "field_retrieval_k": {"en": "Chunks per question (k)", "zh": "每个问题检索片段数（k）"},
    "field_hybrid": {"en": "Hybrid search (keywords + vectors)", "zh": "混合检索（关键词 + 向量）"},
    "field_embedding": {"en": "Embedding model", "zh": "向量模型"},
    "field_ocr": {"en": "OCR scanned pages", "zh": "对扫描页做 OCR"},
    "field_chunk_size": {"en": "Chunk size (characters)", "zh": "分块大小（字符）"},
    "field_chunk_overlap": {"en": "Chunk overlap (characters)", "zh": "分块重叠（字符）"},
    "field_max_upload_mb": {"en": "Largest PDF (MB)", "zh": "PDF 最大体积（MB）"},
    "field_max_pages": {"en": "Most pages per PDF", "zh": "每个 PDF 最多页数"},
    "field_answer_language": {"en": "Answer language", "zh": "回答语言"},
    "field_ui_language": {"en": "Interface language", "zh": "界面语言"},
    "field_system_prompt": {"en": "System prompt", "zh": "系统提示词"},
    "field_answer_prompt": {"en": "Answer prompt", "zh": "回答提示词"},
    "field_rewrite_prompt": {"en": "Query-rewrite prompt", "zh": "问题改写提示词"},
    "opt_auto": {"en": "auto", "zh": "自动"},
    "opt_local": {"en": "local (offline, multilingual)", "zh": "本地（离线多语言模型）"},
    "opt_ollama_embedding": {"en": "Ollama: {model}", "zh": "Ollama：{model}"},
    "opt_ollama": {"en": "Ollama", "zh": "Ollama"},
    "opt_embedded": {"en": "embedded offline model", "zh": "内置离线模型"},
    "opt_agent": {"en": "agent (model calls the search tool)", "zh": "智能体（模型调用检索工具）"},
    "opt_always_retrieve": {"en": "always retrieve", "zh": "每次都检索"},
    "opt_zh": {"en": "Chinese", "zh": "中文"},
    "opt_en": {"en": "English", "zh": "英文"},
}


def t(key: str, lang: str = "en", default: str | None = None, **values: Any) -> str:
    """The text for `key` in `lang` ("en" or "zh"), formatted with `values`."""
    entry = STRINGS.get(key)
    if entry is None:
        template = default if default is not None else key
    else:
        template = entry.get(lang) or entry["en"]
    if not values:
        return template
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def md(template: str, **values: Any) -> str:
    """Fill a Markdown template: values are escaped, except inside `code spans` of the template
    (shown verbatim there; a backtick in a value becomes ')."""
    out = []
    in_code = False
    try:
        parsed = list(string.Formatter().parse(template))
        for literal, field, spec, conversion in parsed:
            out.append(literal)
            in_code ^= literal.count("`") % 2 == 1
            if field is None:
                continue
            value = format(values[field], spec or "")
            out.append(value.replace("`", "'") if in_code else md_literal(value))
    except (KeyError, IndexError, ValueError):
        return template
    return "".join(out)


def error_text(err: BaseException | None = None, lang: str = "en", *, code: str = "",
               params: dict[str, Any] | None = None, message: str = "") -> str:
    """An error as Markdown for an alert: the wording for its code in `lang`, else its message.

    Pass an exception (an AgentError carries code and params), or a stored error's
    `code`, `params` and `message` (a conversation turn)."""
    if err is not None:
        code = getattr(err, "code", "") or code
        params = getattr(err, "params", None) or params
        message = md_plain(str(err)) if not hasattr(err, "message") else _plain(err)
    params = dict(params or {})
    if code == "invalid_setting" and f"invalid_{params.get('field')}" in ERRORS:
        code = f"invalid_{params['field']}"
    if code == "invalid_setting":
        params["label"] = t(f"field_{params.get('field')}", lang, default=str(params.get("field", "")))
    entry = ERRORS.get(code, {}).get(lang) or ERRORS.get(code, {}).get("en")
    if entry is None:
        return message
    text, fix = (md(part, **params) for part in entry)
    return f"{text}  \n{fix}" if fix else text


def _plain(err: Any) -> str:
    """An AgentError without a wording of its own: message and fix as literal text."""
    text = md_plain(err.message)
    return f"{text}  \n{md_plain(err.fix)}" if err.fix else text


def md_plain(text: str) -> str:
    """Library text for Markdown: literal everywhere but its `code spans` (commands to run)."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans at all
        return md_literal(str(text))
    return "`".join(part if i % 2 else md_literal(part) for i, part in enumerate(parts))


def count(key: str, n: int, lang: str = "en") -> str:
    """"1 page" / "2 pages": `key_one` for one (in the languages that have it), else `key`."""
    singular = f"{key}_one"
    return t(singular if n == 1 and singular in STRINGS else key, lang, n=n)


def field_help(field: str, lang: str = "en") -> str:
    entry = FIELD_HELP.get(field, {})
    return entry.get(lang) or entry.get("en", "")


def status_text(code: str, params: dict[str, Any], lang: str = "en", fallback: str = "") -> str:
    """An engine Status (rewrite, search, read) in `lang`."""
    if code == "read":
        return count("status_read", int(params.get("n", 0)), lang)
    return t(f"status_{code}", lang, default=fallback) if code else fallback


def timezone_of(name: str | None) -> tzinfo:
    """The browser's time zone by IANA name; the server's local zone if unknown."""
    try:
        return ZoneInfo(name) if name else _local_zone()
    except (ZoneInfoNotFoundError, ValueError):
        return _local_zone()


def _local_zone() -> tzinfo:
    return datetime.now().astimezone().tzinfo or timezone.utc


def local_time(iso: str, zone: tzinfo, *, seconds: bool = False) -> str:
    """An ISO timestamp (UTC, as stored) as local "2026-12-03 15:48"; the text itself if unparsable."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def day_label(iso: str, zone: tzinfo, lang: str, now: datetime | None = None) -> str:
    """Today / Yesterday / the local date: the headings of the conversation list."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    day = moment.astimezone(zone).date()
    today = (now or datetime.now(timezone.utc)).astimezone(zone).date()
    if day == today:
        return t("today", lang)
    if (today - day).days == 1:
        return t("yesterday", lang)
    return day.isoformat()


def join_list(items: list[str], lang: str = "en") -> str:
    """"a, b, c" in English, "a、b、c" in Chinese."""
    return ("、" if lang == "zh" else ", ").join(items)
