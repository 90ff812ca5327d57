from django.core.management.base import BaseCommand
from tqdm import tqdm

from search import attributes, embeddings


class Command(BaseCommand):
    help = ("Embed every product that has no vector, a changed text or another model's vector (and any flagged "
            "as changed). Safe to stop and run again.")

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        attributes.ensure_attributes()
        embeddings.mark_dirty(embeddings.products_needing_vectors())
        bar = tqdm(total=embeddings.dirty_count(), unit="product", desc="embedding products",
                   disable=options["no_progress"])
        written = embeddings.embed_dirty(batch_size=options["batch_size"], progress=bar.update)
        bar.close()
        self.stdout.write(self.style.SUCCESS(f"Embedded {written} products with {embeddings.embedder_version()}."))
