# ruff: noqa: E501 (rows of a translation table read best whole)
"""Everypixel emulator, the words: keyword vocabularies, colour names and TTS voices.

Image keywords exist in the seven languages the document lists (``en``, ``ru``, ``es``,
``fr``, ``de``, ``pt``, ``it``); each concept is one row ``en|ru|es|fr|de|pt|it``. Video
keywords are English only, capitalised as in the document's example ("Medium shot",
"Real time"). Colour names are CSS colour names, as in the document's example ("WhiteSmoke",
"Sienna", "PeachPuff").
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("en", "ru", "es", "fr", "de", "pt", "it")


def _table(rows: str) -> dict[str, dict[str, str]]:
    """Concept (its English word) → language → word."""
    table: dict[str, dict[str, str]] = {}
    for row in rows.strip().splitlines():
        words = row.strip().split("|")
        assert len(words) == len(LANGUAGES), row
        table[words[0]] = dict(zip(LANGUAGES, words, strict=True))
    return table


FEATURE_WORDS: Final = _table(
    """
horizontal|горизонтальный|horizontal|horizontal|horizontal|horizontal|orizzontale
vertical|вертикальный|vertical|vertical|vertikal|vertical|verticale
square|квадратный|cuadrado|carré|quadratisch|quadrado|quadrato
bright|яркий|brillante|lumineux|hell|brilhante|luminoso
dark|тёмный|oscuro|sombre|dunkel|escuro|scuro
blank|чистый|en blanco|vide|leer|em branco|vuoto
monochrome|монохромный|monocromo|monochrome|monochrom|monocromático|monocromatico
contrast|контраст|contraste|contraste|kontrast|contraste|contrasto
red|красный|rojo|rouge|rot|vermelho|rosso
orange|оранжевый|naranja|orange|orange|laranja|arancione
yellow|жёлтый|amarillo|jaune|gelb|amarelo|giallo
green|зелёный|verde|vert|grün|verde|verde
blue|синий|azul|bleu|blau|azul|blu
purple|фиолетовый|morado|violet|lila|roxo|viola
pink|розовый|rosa|rose|rosa|cor-de-rosa|rosa
brown|коричневый|marrón|marron|braun|castanho|marrone
black|чёрный|negro|noir|schwarz|preto|nero
white|белый|blanco|blanc|weiß|branco|bianco
gray|серый|gris|gris|grau|cinzento|grigio
"""
)
"""Concepts chosen by what the picture shows (orientation, light, dominant colour)."""

GENERAL_WORDS: Final = _table(
    """
no people|без людей|sin personas|personne|keine personen|ninguém|nessuna persona
backgrounds|фоны|fondos|arrière-plans|hintergründe|fundos|sfondi
abstract|абстрактный|abstracto|abstrait|abstrakt|abstrato|astratto
pattern|узор|patrón|motif|muster|padrão|motivo
color image|цветное изображение|imagen en color|image en couleur|farbbild|imagem colorida|immagine a colori
light|свет|luz|lumière|licht|iluminação|luce
gradient|градиент|degradado|dégradé|farbverlauf|gradiente|gradiente
design|дизайн|diseño|conception|gestaltung|design|design
textured|текстурированный|texturizado|texturé|strukturiert|texturizado|testurizzato
illustration|иллюстрация|ilustración|illustration|illustration|ilustração|illustrazione
shape|форма|forma|forme|form|formato|sagoma
simplicity|простота|simplicidad|simplicité|einfachheit|simplicidade|semplicità
modern|современный|moderno|moderne|modern|moderno|moderno
art|искусство|arte|art|kunst|arte|arte
creativity|креативность|creatividad|créativité|kreativität|criatividade|creatività
copy space|место для текста|espacio para copiar|espace de copie|textfreiraum|espaço para texto|spazio per il testo
close-up|крупный план|primer plano|gros plan|nahaufnahme|close-up|primo piano
studio shot|студийная съёмка|foto de estudio|photo de studio|studioaufnahme|foto de estúdio|foto in studio
indoors|в помещении|interior|intérieur|drinnen|interior|al chiuso
outdoors|на открытом воздухе|al aire libre|extérieur|draußen|ao ar livre|all'aperto
nature|природа|naturaleza|nature|natur|natureza|natura
sky|небо|cielo|ciel|himmel|céu|cielo
sunlight|солнечный свет|luz solar|lumière du soleil|sonnenlicht|luz solar|luce solare
water|вода|agua|eau|wasser|água|acqua
summer|лето|verano|été|sommer|verão|estate
beauty|красота|belleza|beauté|schönheit|beleza|bellezza
softness|мягкость|suavidad|douceur|weichheit|suavidade|morbidezza
smooth|гладкий|liso|lisse|glatt|liso|liscio
vibrant color|насыщенный цвет|color vibrante|couleur vive|leuchtende farbe|cor vibrante|colore vivace
multi colored|разноцветный|multicolor|multicolore|mehrfarbig|multicolorido|multicolore
blurred motion|размытое движение|movimiento borroso|flou de mouvement|bewegungsunschärfe|movimento desfocado|movimento sfocato
defocused|не в фокусе|desenfocado|flou|unscharf|desfocado|sfocato
wallpaper|обои|papel pintado|papier peint|tapete|papel de parede|carta da parati
decoration|украшение|decoración|décoration|dekoration|decoração|decorazione
paper|бумага|papel|papier|papier|papel|carta
photography|фотография|fotografía|photographie|fotografie|fotografia|fotografia
digitally generated image|цифровое изображение|imagen generada digitalmente|image générée numériquement|digital generiertes bild|imagem gerada digitalmente|immagine generata digitalmente
technology|технология|tecnología|technologie|technologie|tecnologia|tecnologia
futuristic|футуристический|futurista|futuriste|futuristisch|futurista|futuristico
minimalism|минимализм|minimalismo|minimalisme|minimalismus|minimalismo|minimalismo
geometric shape|геометрическая фигура|forma geométrica|forme géométrique|geometrische form|forma geométrica|forma geometrica
line|линия|línea|ligne|linie|linha|linea
glowing|светящийся|resplandeciente|rayonnant|leuchtend|reluzente|splendente
silhouette|силуэт|silueta|silhouette|silhouette|silhueta|profilo
still life|натюрморт|naturaleza muerta|nature morte|stillleben|natureza-morta|natura morta
single object|один объект|objeto único|objet unique|einzelner gegenstand|objeto único|oggetto singolo
colors|цвета|colores|couleurs|farben|cores|colori
white background|белый фон|fondo blanco|fond blanc|weißer hintergrund|fundo branco|sfondo bianco
empty|пустой|vacío|désert|menschenleer|vazio|deserto
nobody|никого|nadie|aucun|niemand|ninguém por perto|nessuno
surface level|поверхность|superficie|surface|oberfläche|superfície|superficie
"""
)
"""Concepts any picture may be tagged with, in a seeded order."""

VIDEO_WORDS: Final = """
Real time|Medium shot|No people|Moving image|Motion|Colors|Abstract|Backgrounds|Close-up|
Light|Pattern|Gradient|Animation|Digitally generated image|Technology|Design|Shape|
Loopable elements|Full frame|Smooth|Simplicity|Studio shot|Indoors|Illuminated|Glowing|
Textured|Blurred motion|Transition|Futuristic|Modern|Multi colored|Vibrant color|Copy space|
Art|Creativity|Geometric shape|Line|Wallpaper|Decoration|Minimalism|Nobody|Effect|
Visual effects|Flowing|Wave pattern|Defocused|Bright|Dark|Sparse|Steady shot|Tracking shot|
Computer graphic|Empty
"""
VIDEO_KEYWORDS: Final = tuple(w.strip() for w in VIDEO_WORDS.replace("\n", "").split("|"))
VIDEO_FEATURES: Final = ("Horizontal", "Vertical", "Square", "Slow motion")

CSS_COLORS: Final[dict[str, tuple[int, int, int]]] = {
    "Black": (0, 0, 0), "DimGray": (105, 105, 105), "Gray": (128, 128, 128),
    "DarkGray": (169, 169, 169), "Silver": (192, 192, 192), "LightGray": (211, 211, 211),
    "Gainsboro": (220, 220, 220), "WhiteSmoke": (245, 245, 245), "White": (255, 255, 255),
    "Maroon": (128, 0, 0), "DarkRed": (139, 0, 0), "Red": (255, 0, 0),
    "FireBrick": (178, 34, 34), "Crimson": (220, 20, 60), "IndianRed": (205, 92, 92),
    "Salmon": (250, 128, 114), "Tomato": (255, 99, 71), "OrangeRed": (255, 69, 0),
    "DarkOrange": (255, 140, 0), "Orange": (255, 165, 0), "Gold": (255, 215, 0),
    "Yellow": (255, 255, 0), "Khaki": (240, 230, 140), "PeachPuff": (255, 218, 185),
    "Tan": (210, 180, 140), "Peru": (205, 133, 63), "Sienna": (160, 82, 45),
    "SaddleBrown": (139, 69, 19), "Chocolate": (210, 105, 30), "Olive": (128, 128, 0),
    "OliveDrab": (107, 142, 35), "YellowGreen": (154, 205, 50), "Green": (0, 128, 0),
    "ForestGreen": (34, 139, 34), "LimeGreen": (50, 205, 50), "SeaGreen": (46, 139, 87),
    "DarkGreen": (0, 100, 0), "Teal": (0, 128, 128), "DarkCyan": (0, 139, 139),
    "Turquoise": (64, 224, 208), "Cyan": (0, 255, 255), "SkyBlue": (135, 206, 235),
    "SteelBlue": (70, 130, 180), "DodgerBlue": (30, 144, 255), "RoyalBlue": (65, 105, 225),
    "Blue": (0, 0, 255), "Navy": (0, 0, 128), "MidnightBlue": (25, 25, 112),
    "SlateBlue": (106, 90, 205), "Indigo": (75, 0, 130), "Purple": (128, 0, 128),
    "DarkMagenta": (139, 0, 139), "Orchid": (218, 112, 214), "Violet": (238, 130, 238),
    "Plum": (221, 160, 221), "Magenta": (255, 0, 255), "HotPink": (255, 105, 180),
    "Pink": (255, 192, 203), "MistyRose": (255, 228, 225), "Beige": (245, 245, 220),
    "Ivory": (255, 255, 240), "Lavender": (230, 230, 250), "SlateGray": (112, 128, 144),
}  # fmt: skip

VOICES: Final[tuple[dict[str, str], ...]] = (
    {"api_name": "jack", "age": "adult", "language": "eng", "gender": "male"},
    {"api_name": "emma", "age": "young", "language": "eng", "gender": "female"},
    {"api_name": "oliver", "age": "old", "language": "eng", "gender": "male"},
    {"api_name": "lily", "age": "child", "language": "eng", "gender": "female"},
    {"api_name": "lucia", "age": "adult", "language": "spa", "gender": "female"},
    {"api_name": "mateo", "age": "young", "language": "spa", "gender": "male"},
    {"api_name": "chloe", "age": "adult", "language": "fra", "gender": "female"},
    {"api_name": "hans", "age": "adult", "language": "deu", "gender": "male"},
    {"api_name": "giulia", "age": "young", "language": "ita", "gender": "female"},
    {"api_name": "joao", "age": "adult", "language": "por", "gender": "male"},
)
"""``GET /v1/tts/voices``: the document's one example (``jack``) and more of its kind."""
