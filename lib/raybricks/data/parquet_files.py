"""The Parquet route's Ray side: the files Spark wrote, read by Ray tasks as they are
named (nothing listed, no task to fetch metadata: the driver reads each file's footer),
consecutive small files packed into one task up to Ray's target block size (a task per
tiny file would start a Ray worker process each); and Ray's blocks written as one file
each, for Spark to read: by the driver, a block at a time, up to DRIVER_WRITES_BYTES
(here a Ray task's first start alone costs more than the driver's write of 40 MB), by
Ray tasks where they are many more."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.data.block import BlockMetadata
from ray.data.context import DataContext
from ray.data.datasource import Datasource, ReadTask

from raybricks.data.schema import conform


class ParquetFiles(Datasource):
    """These Parquet files, a block each, every block cast to `schema`; a read task
    reads consecutive files up to the target block size, and at least one file."""

    def __init__(self, files: Sequence[Path], schema: pa.Schema) -> None:
        super().__init__()
        self.files, self.schema = list(files), schema
        self.footers = [pq.read_metadata(path) for path in self.files]

    def estimate_inmemory_data_size(self) -> int:
        return sum(_uncompressed(footer) for footer in self.footers)

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: DataContext | None = None,
    ) -> list[ReadTask]:
        target = (data_context or DataContext.get_current()).target_max_block_size
        sizes = [_uncompressed(footer) for footer in self.footers]
        return [
            self._read_task(group, sizes, per_task_row_limit)
            for group in packed(sizes, target or DEFAULT_TASK_BYTES)
        ]

    def _read_task(self, group: list[int], sizes: list[int], row_limit: int | None) -> ReadTask:
        paths = tuple(str(self.files[i]) for i in group)
        metadata = BlockMetadata(
            num_rows=sum(self.footers[i].num_rows for i in group),
            size_bytes=sum(sizes[i] for i in group),
            input_files=paths,
            exec_stats=None,
        )
        return ReadTask(
            _reader(paths, self.schema),
            metadata,
            schema=self.schema,
            per_task_row_limit=row_limit,
        )


DEFAULT_TASK_BYTES = 128 * 1024 * 1024  # Ray's own default target block size


def packed(sizes: Sequence[int], bound: int) -> list[list[int]]:
    """The indexes of `sizes` in consecutive groups of at most `bound` in all (a group
    of one where a single size is above it)."""
    groups: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if not groups or total + size > bound:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size
    return groups


def _reader(paths: Sequence[str], schema: pa.Schema) -> Any:
    def read() -> Iterable[pa.Table]:
        for path in paths:
            # Spark writes TIMESTAMP as INT96, which Arrow would read as nanoseconds.
            yield conform(pq.read_table(path, coerce_int96_timestamp_unit="us"), schema)

    return read


def _uncompressed(footer: pq.FileMetaData) -> int:
    groups = (footer.row_group(i) for i in range(footer.num_row_groups))
    return sum(group.total_byte_size for group in groups)


DRIVER_WRITES_BYTES = 1024**3
FILE_BYTES = 64 * 1024 * 1024  # the driver's files: about this size (a Spark task's worth)


def write_parts(
    blocks: Sequence[Any], size: int, folder: Path, schema: pa.Schema, num_cpus: float
) -> tuple[str, list[tuple[str, int]]]:
    """The blocks (ObjectRefs of Arrow tables, `size` bytes in all) as Parquet files in
    `folder`, each written whole: who wrote them, and each file's name and rows. The
    driver writes consecutive blocks into files of about FILE_BYTES, a block at a time;
    Ray tasks write a file per block."""
    folder.mkdir(parents=True)
    if size > DRIVER_WRITES_BYTES:
        write = ray.remote(_write_part).options(num_cpus=num_cpus)
        paths = [str(folder / f"part-{i:05d}.parquet") for i in range(len(blocks))]
        written = ray.get(
            [write.remote(b, path, schema) for b, path in zip(blocks, paths, strict=True)]
        )
        return "Ray tasks", [part for part in written if part is not None]
    return "the driver", _written_by_the_driver(blocks, folder, schema)


def _written_by_the_driver(
    blocks: Sequence[Any], folder: Path, schema: pa.Schema
) -> list[tuple[str, int]]:
    parts: list[tuple[str, int]] = []
    writer: pq.ParquetWriter | None = None
    for block in blocks:
        table = conform(ray.get(block), schema)
        if not table.num_rows:
            continue
        if writer is None:
            name = f"part-{len(parts):05d}.parquet"
            writer, written, rows = pq.ParquetWriter(folder / name, schema), 0, 0
        writer.write_table(table)
        written, rows = written + table.nbytes, rows + table.num_rows
        if written >= FILE_BYTES:
            writer.close()
            parts.append((name, rows))
            writer = None
    if writer is not None:
        writer.close()
        parts.append((name, rows))
    return parts


def _write_part(block: pa.Table, path: str, schema: pa.Schema) -> tuple[str, int] | None:
    if not block.num_rows:
        return None
    pq.write_table(conform(block, schema), path)
    return Path(path).name, block.num_rows
