"""The export pipeline's state machine, driven by a fake API and a fake clock: no sleeping."""

from __future__ import annotations

import io
import logging
import zipfile
from datetime import date, timedelta

import pytest
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices import settings
from source_sp_invoices.export_pipeline.downloads import BackgroundDownload
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts, day_start
from source_sp_invoices.export_pipeline.pipeline import (
    CHECKPOINT,
    DateRangeRefused,
    DocumentUnreadable,
    Entry,
    ExportFailed,
    ExportPipeline,
    UnusableFile,
)
from source_sp_invoices.export_pipeline.planner import DocumentSize, WindowPlanner
from source_sp_invoices.export_pipeline.windows import Window, day_windows

logger = logging.getLogger("test")


class FakeClock:
    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.time += seconds


def zip_bytes(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(f"{name}.xml", f"<NFe>{name}</NFe>")
    return buffer.getvalue()


class FakeApi:
    """Exports become DONE after `polls_until_done` polls; scripted statuses override that."""

    def __init__(self, documents: dict[str, list[str]], polls_until_done: int = 2) -> None:
        self.documents = documents  # document id -> invoice ids; doc ids are "<window key>#n"
        self.polls_until_done = polls_until_done
        self.created: list[tuple[str, str]] = []  # (window key, export id)
        self.polls: dict[str, int] = {}
        self.script: dict[str, list[dict]] = {}  # export id -> statuses to answer first
        self.downloads: list[str] = []
        self.broken_downloads: dict[str, int] = {}  # document id -> how many come truncated

    def create_slot_wait(self) -> float:
        return 0.0

    def create_export(self, window: Window) -> str:
        export_id = f"E{len(self.created) + 1}"
        self.created.append((window.key, export_id))
        return export_id

    def get_export(self, export_id: str):
        self.polls[export_id] = self.polls.get(export_id, 0) + 1
        if self.script.get(export_id):
            return self.script[export_id].pop(0)
        if self.polls[export_id] < self.polls_until_done:
            return {"exportId": export_id, "status": "PROCESSING"}
        window = dict((e, w) for w, e in self.created).get(export_id, "resumed")
        ids = sorted(d for d in self.documents if d.startswith(window + "#"))
        return {"exportId": export_id, "status": "DONE", "invoicesDocumentIds": ids}

    def download_document(self, document_id: str) -> BackgroundDownload:
        self.downloads.append(document_id)
        data = zip_bytes(self.documents[document_id])
        if self.broken_downloads.get(document_id, 0) > 0:
            self.broken_downloads[document_id] -= 1
            data = data[: len(data) // 2]
        return BackgroundDownload([data[:100], data[100:]])


def pipeline_for(
    api, windows: list[Window], saved=None, ahead=3, clock=None, counts=None, size=None, **kwargs
):
    """A pipeline over the days of `windows`, with one-day windows unless told otherwise."""
    planner = WindowPlanner(
        counts,
        logger,
        size or DocumentSize(),
        max_days=kwargs.pop("max_days", 1),
        first_days=kwargs.pop("window_days", 1),
    )
    return ExportPipeline(
        api,
        windows[0].first,
        windows[-1].last,
        saved or {},
        logger,
        planner,
        ahead=ahead,
        clock=clock or FakeClock(),
        **kwargs,
    )


def run(
    pipeline: ExportPipeline, windows: list[Window] | None = None
) -> tuple[list[str], list[dict]]:
    """All invoice ids read and the pending exports at every checkpoint."""
    invoices, checkpoints = [], []
    for window in pipeline.windows():
        for event in pipeline.read_window(window):
            if event is CHECKPOINT:
                checkpoints.append(pipeline.pending())
            else:
                assert isinstance(event, Entry) and event.window.first == window.first
                invoices.append(event.xml.invoice_id)
    return invoices, checkpoints


WINDOWS = day_windows(date(2024, 1, 1), date(2024, 1, 4), 1)


def test_day_windows_cover_the_days_once():
    assert [w.key for w in day_windows(date(2024, 1, 1), date(2024, 1, 8), 3)] == [
        "2024-01-01/2024-01-03",
        "2024-01-04/2024-01-06",
        "2024-01-07/2024-01-08",
    ]
    assert day_windows(date(2024, 1, 2), date(2024, 1, 1), 1) == []
    assert Window.from_key("2024-01-01/2024-01-03") == Window(date(2024, 1, 1), date(2024, 1, 3))


def documents_for(windows: list[Window], per_window: int = 1) -> dict[str, list[str]]:
    return {
        f"{w.key}#{n}": [f"{w.first}-{n}-{i}" for i in range(3)]
        for w in windows
        for n in range(per_window)
    }


def test_every_window_is_exported_polled_downloaded_and_read_in_order():
    api = FakeApi(documents_for(WINDOWS, per_window=2))
    clock = FakeClock()
    invoices, _ = run(pipeline_for(api, WINDOWS, ahead=1, clock=clock))
    assert invoices == [i for d in sorted(api.documents) for i in api.documents[d]]
    assert [w for w, _ in api.created] == [w.key for w in WINDOWS]
    assert sorted(api.downloads) == sorted(api.documents)
    assert clock.time > 0  # it waited for the exports instead of spinning


def test_exports_are_created_ahead_up_to_the_bound():
    api = FakeApi(documents_for(WINDOWS))
    pipeline = pipeline_for(api, WINDOWS, ahead=3)
    events = pipeline.read_window(next(pipeline.windows()))
    # One checkpoint after each export created: a sync killed while the next creation waits
    # for its slot (one every 6 s) has every export created so far in its state.
    for n in range(1, 4):
        assert next(events) is CHECKPOINT
        assert [w for w, _ in api.created] == [w.key for w in WINDOWS[:n]]
        assert set(pipeline.pending()) == {w.key for w in WINDOWS[:n]}
    next(events)
    assert [w for w, _ in api.created] == [w.key for w in WINDOWS[:3]]  # the bound holds


def test_an_export_created_again_by_a_poll_is_saved_before_the_next_is_created():
    api = FakeApi(documents_for(WINDOWS[:2]))
    api.script["E1"] = [{"exportId": "E1", "status": "ERROR", "errorMessage": "Internal error"}]
    api.script["E2"] = [{"exportId": "E2", "status": "ERROR", "errorMessage": "Internal error"}]
    pipeline = pipeline_for(api, WINDOWS[:2], ahead=2)
    saved_after_each_creation = []
    for window in pipeline.windows():
        for event in pipeline.read_window(window):
            if event is CHECKPOINT and len(api.created) > len(saved_after_each_creation):
                saved_after_each_creation.append(
                    sorted(job["exportId"] for job in pipeline.pending().values())
                )
    assert [e for _, e in api.created] == ["E1", "E2", "E3", "E4"]
    assert saved_after_each_creation == [["E1"], ["E1", "E2"], ["E2", "E3"], ["E3", "E4"]]


def test_a_checkpoint_follows_every_export_created_and_every_document_read():
    api = FakeApi(documents_for(WINDOWS[:1], per_window=2))
    _, checkpoints = run(pipeline_for(api, WINDOWS[:1]))
    key = WINDOWS[0].key
    assert checkpoints == [
        {key: {"exportId": "E1", "documentsDone": []}},
        {key: {"exportId": "E1", "documentsDone": [f"{key}#0"]}},
        {key: {"exportId": "E1", "documentsDone": [f"{key}#0", f"{key}#1"]}},
    ]


def test_a_resumed_sync_polls_saved_exports_and_skips_documents_already_read():
    window = WINDOWS[0]
    api = FakeApi(documents_for([window], per_window=2))
    api.created = [(window.key, "E-saved")]
    saved = {window.key: {"exportId": "E-saved", "documentsDone": [f"{window.key}#0"]}}
    invoices, _ = run(pipeline_for(api, [window], saved))
    assert api.created == [(window.key, "E-saved")]  # nothing created again
    assert api.polls["E-saved"] >= 1
    assert api.downloads == [f"{window.key}#1"]
    assert invoices == api.documents[f"{window.key}#1"]


def test_exports_saved_by_a_killed_sync_stay_in_every_checkpoint_until_the_plan_reaches_them():
    # The last sync saved the exports of 01 and 04; 02 and 03 were never created.
    api = FakeApi(documents_for(WINDOWS))
    api.created = [(WINDOWS[0].key, "E-01"), (WINDOWS[3].key, "E-04")]
    saved = {
        WINDOWS[0].key: {"exportId": "E-01", "documentsDone": []},
        WINDOWS[3].key: {"exportId": "E-04", "documentsDone": []},
    }
    _, checkpoints = run(pipeline_for(api, WINDOWS, saved, ahead=1))
    # Until the window of 04 is read, its export is in the state: a kill meanwhile polls it
    # again instead of creating it again.
    assert len(checkpoints) > 4
    assert all(c.get(WINDOWS[3].key, {}).get("exportId") == "E-04" for c in checkpoints)
    assert [e for _, e in api.created] == ["E-01", "E-04", "E3", "E4"]


def test_an_export_in_error_is_created_again_then_read():
    window = WINDOWS[0]
    api = FakeApi(documents_for([window]))
    api.script["E1"] = [{"exportId": "E1", "status": "ERROR", "errorMessage": "Internal error"}]
    invoices, _ = run(pipeline_for(api, [window]))
    assert [e for _, e in api.created] == ["E1", "E2"]
    assert len(invoices) == 3


def test_an_export_that_is_gone_is_created_again():
    window = WINDOWS[0]
    api = FakeApi(documents_for([window]))
    api.script["E-old"] = [None]
    saved = {window.key: {"exportId": "E-old", "documentsDone": []}}
    invoices, _ = run(pipeline_for(api, [window], saved))
    assert [e for _, e in api.created] == ["E1"] and len(invoices) == 3


def test_a_window_that_keeps_failing_stops_the_sync_naming_the_window_and_amazons_message():
    window = WINDOWS[1]
    api = FakeApi(documents_for([window]))
    failure = {"status": "ERROR", "errorMessage": "Too many invoices in range"}
    for n in range(1, settings.EXPORT_ATTEMPTS + 1):
        api.script[f"E{n}"] = [failure]
    pipeline = pipeline_for(api, [window])
    with pytest.raises(ExportFailed) as caught:
        run(pipeline)
    assert "2024-01-02..2024-01-02" in caught.value.message
    assert "Too many invoices in range" in caught.value.message
    assert len(api.created) == settings.EXPORT_ATTEMPTS


def test_an_export_without_documents_completes_its_window_empty():
    window = WINDOWS[0]
    api = FakeApi({})
    invoices, _ = run(pipeline_for(api, [window]))
    assert invoices == [] and api.downloads == []


def test_a_truncated_document_is_downloaded_again_without_repeating_entries():
    window = WINDOWS[0]
    api = FakeApi(documents_for([window]))
    api.broken_downloads[f"{window.key}#0"] = 1
    invoices, _ = run(pipeline_for(api, [window]))
    assert invoices == api.documents[f"{window.key}#0"]
    assert api.downloads == [f"{window.key}#0"] * 2


def test_a_document_that_stays_corrupt_fails_loudly():
    window = WINDOWS[0]
    api = FakeApi(documents_for([window]))
    api.broken_downloads[f"{window.key}#0"] = settings.DOWNLOAD_ATTEMPTS
    with pytest.raises(DocumentUnreadable, match=f"{window.key}#0 of 2024-01-01..2024-01-01"):
        run(pipeline_for(api, [window]))


def test_a_file_no_download_can_fix_fails_at_once_naming_document_export_and_window():
    window = WINDOWS[0]
    document_id = f"{window.key}#0"

    class Undecodable(FakeApi):
        def download_document(self, document_id: str) -> BackgroundDownload:
            self.downloads.append(document_id)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("bad.xml", b'<?xml version="1.0" encoding="UTF-8"?><a>\xff</a>')
            return BackgroundDownload([buffer.getvalue()])

    api = Undecodable({document_id: ["x"]})
    with pytest.raises(UnusableFile) as caught:
        run(pipeline_for(api, [window]))
    message = caught.value.message
    assert f"Document {document_id} of {window} (export E1)" in message
    assert "bad.xml is not valid UTF-8" in message
    assert api.downloads == [document_id]  # not downloaded again: the file is what it is


def test_polling_backs_off_to_its_cap():
    window = WINDOWS[0]
    api = FakeApi(documents_for([window]), polls_until_done=12)
    clock = FakeClock()
    run(pipeline_for(api, [window], clock=clock))
    assert api.polls["E1"] == 12
    # the first poll at once, then 1, 2, 4 and 8 s, then the 10 s cap for the other seven
    assert clock.time == pytest.approx(1 + 2 + 4 + 8 + 10 * 7)


class DayApi(FakeApi):
    """Exports hold the invoices of their days, split into documents of `per_document`."""

    def __init__(self, counts: dict[date, int], per_document: int) -> None:
        super().__init__({}, polls_until_done=1)
        self.counts = counts
        self.per_document = per_document

    def create_slot_wait(self) -> float:
        return 0.0

    def create_export(self, window: Window) -> str:
        export_id = super().create_export(window)
        invoices = [
            f"{day}-{i}"
            for day in (
                window.first + timedelta(days=n)
                for n in range((window.last - window.first).days + 1)
            )
            for i in range(self.counts.get(day, 0))
        ]
        chunks = [
            invoices[i : i + self.per_document] for i in range(0, len(invoices), self.per_document)
        ]
        for n, chunk in enumerate(chunks or [[]]):
            self.documents[f"{window.key}#{n}"] = chunk
        return export_id


def sizes(api: FakeApi) -> list[int]:
    return [
        (Window.from_key(key).last - Window.from_key(key).first).days + 1 for key, _ in api.created
    ]


def test_other_exports_are_polled_while_waiting_for_the_document_slot():
    windows = WINDOWS[:2]
    api = FakeApi(documents_for(windows, per_window=2), polls_until_done=3)
    clock = FakeClock()
    slot_free_at = [0.0]

    def slot_wait() -> float:
        return max(0.0, slot_free_at[0] - clock.now())

    original = api.download_document

    def download(document_id):
        slot_free_at[0] = clock.now() + 60  # one document a minute
        return original(document_id)

    api.download_document = download
    pipeline = pipeline_for(api, windows, ahead=2, clock=clock, document_slot_wait=slot_wait)
    events = pipeline.read_window(next(pipeline.windows()))
    list(events)
    # while the second document of window 1 waited a minute, window 2's export became DONE
    assert api.polls["E2"] >= 3
    assert clock.time >= 60


def test_a_saved_export_later_in_the_plan_is_reused_not_created_again():
    windows = WINDOWS
    api = FakeApi(documents_for(windows))
    api.created.append(("2024-01-03/2024-01-03", "SAVED"))  # the FakeApi knows its window
    saved = {"2024-01-03/2024-01-03": {"exportId": "SAVED", "documentsDone": []}}
    invoices, _ = run(pipeline_for(api, windows, saved=saved))
    keys = [key for key, export_id in api.created[1:]]
    assert "2024-01-03/2024-01-03" not in keys  # polled, never created again
    assert api.polls["SAVED"] >= 1
    assert invoices == [
        i for w in windows for d in sorted(documents_for([w])) for i in documents_for([w])[d]
    ]


class RefusingApi(FakeApi):
    """Refuses, as a 400 would, any export longer than `longest` days."""

    def __init__(self, longest: int) -> None:
        super().__init__({})
        self.longest = longest
        self.refused: list[str] = []

    def create_export(self, window: Window) -> str:
        if window.days > self.longest:
            self.refused.append(window.key)
            raise DateRangeRefused("InvalidInput: date range exceeds the maximum")
        return super().create_export(window)


def test_a_date_range_amazon_refuses_is_searched_down_to_the_longest_it_takes(caplog):
    """A quiet seller: the plan wants one window for the 59 days after the first, Amazon takes 5
    at most. Each refusal halves the way between the longest range taken and the shortest
    refused, never asking a refused length again, until windows span exactly 5 days."""
    windows = day_windows(date(2024, 1, 1), date(2024, 2, 29), 1)  # 60 days
    api = RefusingApi(longest=5)
    counts = InvoiceCounts()
    counts.listed(day_start(date(2024, 1, 1)), day_start(date(2024, 3, 1)))  # no invoice
    pipeline = pipeline_for(api, windows, ahead=1, max_days=None, counts=counts)
    with caplog.at_level(logging.WARNING):
        run(pipeline)
    created = [Window.from_key(key) for key, _ in api.created]
    assert all(window.days <= 5 for window in created)
    # every day is exported exactly once, in order
    days = [w.first + timedelta(days=n) for w in created for n in range(w.days)]
    assert days == [date(2024, 1, 1) + timedelta(days=n) for n in range(60)]
    refused = [Window.from_key(key).days for key in api.refused]
    assert refused == sorted(set(refused), reverse=True) and refused[0] == 59
    assert len(refused) <= 6 and pipeline.planner.longest_range == 5
    assert [w.days for w in created][-3:-1] == [5, 5]  # the longest Amazon takes, from then on
    assert sum("Amazon refused the 59-day window" in r.message for r in caplog.records) == 1


def test_a_single_day_amazon_refuses_fails_naming_it():
    api = RefusingApi(longest=0)
    with pytest.raises(AirbyteTracedException, match="single day 2024-01-01..2024-01-01"):
        run(pipeline_for(api, WINDOWS, max_days=None))


@pytest.mark.parametrize("failed", ["FATAL", "CANCELLED", "ERROR"])
def test_the_guides_waits_are_waits_and_its_ends_fail_like_error(failed):
    windows = WINDOWS[:1]
    api = FakeApi(documents_for(windows), polls_until_done=1)
    api.script["E1"] = [
        {"exportId": "E1", "status": "IN_QUEUE"},
        {"exportId": "E1", "status": "IN_PROGRESS"},
        {"exportId": "E1", "status": failed, "errorMessage": ""},
    ]
    invoices, _ = run(pipeline_for(api, windows))
    assert [key for key, _ in api.created] == [windows[0].key] * 2  # created again, once
    assert len(invoices) == 3


@pytest.mark.parametrize(
    ("failed", "error_message", "reason"),
    [
        ("FATAL", "Export generation failed", "Export generation failed"),
        ("CANCELLED", "", "no errorMessage"),  # the guide's CANCELLED need not say why
        ("ERROR", "Too many invoices in range", "Too many invoices in range"),
    ],
)
def test_an_end_state_of_every_attempt_fails_after_the_bound_naming_status_and_window(
    failed, error_message, reason
):
    window = WINDOWS[2]
    api = FakeApi(documents_for([window]))
    for n in range(1, settings.EXPORT_ATTEMPTS + 2):  # one more than the bound: never asked
        api.script[f"E{n}"] = [
            {"exportId": f"E{n}", "status": "IN_QUEUE"},
            {"exportId": f"E{n}", "status": failed, "errorMessage": error_message},
        ]
    with pytest.raises(ExportFailed) as caught:
        run(pipeline_for(api, [window]))
    last = f"E{settings.EXPORT_ATTEMPTS}"
    assert caught.value.message == (
        f"Amazon could not export the invoices of 2024-01-03..2024-01-03 "
        f"({settings.EXPORT_ATTEMPTS} attempts; the last, export {last}, ended {failed}): "
        f"{reason}. The window was not skipped: the next sync tries it again."
    )
    assert api.created == [(window.key, f"E{n}") for n in range(1, settings.EXPORT_ATTEMPTS + 1)]
    assert api.polls == {f"E{n}": 2 for n in range(1, settings.EXPORT_ATTEMPTS + 1)}


def test_a_status_no_reading_names_is_waited_on_then_fails_naming_it(caplog):
    windows = WINDOWS[:1]
    api = FakeApi(documents_for(windows))
    api.script["E1"] = [{"exportId": "E1", "status": "PAUSED"}] * 200
    with caplog.at_level(logging.WARNING), pytest.raises(AirbyteTracedException) as failure:
        run(pipeline_for(api, windows))
    assert f"stayed in status 'PAUSED' for {settings.EXPORT_UNKNOWN_STATUS_POLLS} polls" in (
        failure.value.message
    )
    assert api.polls["E1"] == settings.EXPORT_UNKNOWN_STATUS_POLLS
    assert len(api.created) == 1  # never taken for a failure and created again
    assert sum("which this connector does not know" in r.message for r in caplog.records) == 1


class XmlBodyApi(FakeApi):
    """Documents whose body is one XML file, as the model's example URL (.xml) suggests."""

    def __init__(self, bodies: dict[str, list[bytes]]) -> None:
        super().__init__({document_id: [] for document_id in bodies})
        self.bodies = bodies  # document id -> bodies of its successive downloads

    def download_document(self, document_id: str) -> BackgroundDownload:
        self.downloads.append(document_id)
        return BackgroundDownload([self.bodies[document_id].pop(0)])


NFE = '<?xml version="1.0" encoding="UTF-8"?>\n<nfeProc versao="4.00"><NFe>á</NFe></nfeProc>\n'


def test_a_body_that_is_one_xml_file_is_read_as_that_file_named_after_the_document(caplog):
    document_id = f"{WINDOWS[0].key}#0"
    api = XmlBodyApi({document_id: [NFE.encode()]})
    with caplog.at_level(logging.WARNING):
        invoices, _ = run(pipeline_for(api, WINDOWS[:1]))
    assert invoices == [document_id] and api.downloads == [document_id]  # read once, no retry
    assert sum("is one XML file, not a ZIP" in r.message for r in caplog.records) == 1


def test_an_xml_body_cut_short_is_downloaded_again():
    document_id = f"{WINDOWS[0].key}#0"
    whole = NFE.encode()
    api = XmlBodyApi({document_id: [whole[: len(whole) // 2], whole]})
    invoices, _ = run(pipeline_for(api, WINDOWS[:1]))
    assert invoices == [document_id] and api.downloads == [document_id] * 2


@pytest.mark.parametrize("body", [b"", b"%PDF-1.7 not a document", b"\x00\x01\x02\x03"])
def test_a_body_neither_zip_nor_xml_is_downloaded_again_then_fails(body):
    document_id = f"{WINDOWS[0].key}#0"
    api = XmlBodyApi({document_id: [body] * settings.DOWNLOAD_ATTEMPTS})
    with pytest.raises(DocumentUnreadable, match="neither a ZIP nor an XML file"):
        run(pipeline_for(api, WINDOWS[:1]))
    assert len(api.downloads) == settings.DOWNLOAD_ATTEMPTS
