"""`addressclip validate MANIFEST`: check a manifest against the schema and the files on disk."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a dataset manifest (schema, labels, splits, image files)",
        description=(
            "Check a manifest parquet: columns and types, required values, split values, every val/test "
            "address present in train, coordinate ranges, UTM consistent with lat/lon, duplicate paths, "
            "paths that leave the image root, every address id present in the AddressBook the manifest "
            "names, and (unless --no-files) that every image file exists (with --decode: that it "
            "decodes). Prints one problem per line; exits 1 if there is any."
        ),
    )
    parser.add_argument("manifest", metavar="MANIFEST", help="path of manifest.parquet")
    parser.add_argument("--no-files", action="store_true", help="skip the check that image files exist")
    parser.add_argument(
        "--decode", action="store_true", help="also decode every image (as build does): finds truncated files"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.data.manifest import read_manifest, validate_manifest

    problems = validate_manifest(args.manifest, check_files=not args.no_files, decode=args.decode)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    manifest = read_manifest(args.manifest)
    counts = manifest.frame["split"].value_counts()
    parts = ", ".join(f"{split} {int(counts.get(split, 0))}" for split in ("train", "val", "test"))
    classes = manifest.frame["address_id"].nunique()
    print(f"ok: {len(manifest.frame)} images ({parts}), {classes} addresses")
    return 0
