"""`/notes`: a small resource whose state lives in the database, shared by every worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import Database
from app.models import MAX_ID, MAX_TEXT, Note

MAX_PAGE = 100


def _no_nul(text: str) -> str:
    # PostgreSQL's text cannot hold NUL, SQLite's can: refused on both, so both behave alike.
    if "\x00" in text:
        raise PydanticCustomError("string_nul", "Text cannot contain the NUL character (U+0000)")
    return text


class NoteIn(BaseModel):
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_no_nul)]


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    text: str
    created_at: datetime


def session(request: Request) -> Iterator[Session]:
    """A dependency: one session per request, from this worker's engine."""
    database: Database = request.app.state.database
    with database.sessions() as current:
        yield current
    database.outage.ended()  # this request's queries went through: the database answers


router = APIRouter(prefix="/notes", tags=["notes"])
DB = Annotated[Session, Depends(session)]
NoteId = Annotated[int, Path(ge=1, le=MAX_ID)]  # ids start at 1; beyond MAX_ID none can exist


# Plain `def` endpoints: SQLAlchemy's calls block, so FastAPI runs them in its thread pool
# rather than on the event loop.
@router.post("", status_code=201)
def create(body: NoteIn, db: DB) -> NoteOut:
    note = Note(text=body.text, created_at=datetime.now(UTC))
    db.add(note)
    db.commit()  # before the response: a 201 means the note is on disk
    return NoteOut.model_validate(note)


@router.get("/{note_id}")
def read(note_id: NoteId, db: DB) -> NoteOut:
    return NoteOut.model_validate(_found(db, note_id))


@router.get("")
def page(
    db: DB,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[NoteOut]:
    notes = db.scalars(select(Note).order_by(Note.id).limit(limit).offset(offset))
    return [NoteOut.model_validate(note) for note in notes]


@router.delete("/{note_id}", status_code=204)
def delete(note_id: NoteId, db: DB) -> Response:
    db.delete(_found(db, note_id))
    db.commit()
    return Response(status_code=204)


def _found(db: Session, note_id: int) -> Note:
    note = db.get(Note, note_id)
    if note is None:
        raise HTTPException(404, f"Note {note_id} not found.")
    return note
