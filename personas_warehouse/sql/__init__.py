"""SQL for every dialect, built as sqlglot expression trees and rendered in one place."""
