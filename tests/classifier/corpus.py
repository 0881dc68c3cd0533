"""A labeled archive in English, Ukrainian and Russian, written into a folder as real files:
plain text, Markdown, HTML, PDF (fpdf2), Word (python-docx) and binaries known only by their names.
Labels are the expected level-2 codes of tests/classifier/data/jd.yaml."""
from pathlib import Path

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

# (file name, expected level-2 code, text)
DOCUMENTS = [
    ("grocery_receipt_2024-03-02.txt", "10.02", "SuperMart receipt. Milk 1.20, bread 0.90, eggs 2.50, apples 1.80, "
     "cheese 4.10. Total 10.50 EUR paid by card. Thank you for shopping with us."),
    ("electricity_bill_april.html", "10.02", "<html><head><title>Your bill</title><style>p{color:red}</style></head>"
     "<body><h1>Electricity bill</h1><p>Meter reading 10234 kWh. Amount due for April electricity: 64.20 EUR. "
     "Please pay the utility bill by 15 May.</p><script>track()</script></body></html>"),
    ("bank_statement_2024-05.pdf", "10.01", "Monthly account statement. Opening balance 2,340.00. Transactions: "
     "salary transfer, card payment, ATM withdrawal. Closing balance 2,910.15. Account number DE12 3456."),
    ("tax_return_2023.docx", "10.03", "Income tax return 2023. Declared income, deductions for home office, "
     "expected tax refund 820 EUR. Submitted to the tax office on 30 April."),
    ("blood_test_results.md", "15.01", "# Laboratory results\n\nHemoglobin 14.1 g/dL, cholesterol 5.2 mmol/L, "
     "glucose 4.8. Blood test ordered by Dr. Smith. All values within reference range."),
    ("half_marathon_training_plan.txt", "15.02", "12-week half marathon training plan: easy runs, intervals on "
     "Tuesday, tempo run Thursday, long run on Sunday, gym strength workouts twice a week."),
    ("plumber_repair_report.docx", "20.02", "Plumber visit report. Fixed a leaking pipe under the kitchen sink, "
     "replaced the boiler valve, checked the bathroom pipes for leaks. Repair work done by contractor."),
    ("flight_booking_lisbon.html", "25.01", "<html><body><h2>Booking confirmation</h2><p>Flight TP 557 "
     "Berlin - Lisbon, departure 08:15, seat 14C. Boarding pass available 24 hours before the flight. "
     "Hotel not included.</p></body></html>"),
    ("curriculum_vitae_2024.docx", "30.01", "Curriculum vitae. Work experience: senior data engineer 2019-2024, "
     "backend developer 2015-2019. Education, skills, languages. Resume for job applications."),
    ("k8s_rollout_notes.md", "45.01", "## Kubernetes rollout\n\nkubectl apply the deployment, check pods, "
     "helm upgrade the chart, scale replicas in the cluster, inspect the container image tag."),
    ("clickhouse_mergetree_tuning.md", "40.01", "ClickHouse MergeTree table tuning: ORDER BY key, partitions, "
     "columnar compression, analytical query speed for OLAP dashboards over billions of rows."),
    ("basswood_spoon_project.txt", "55.02", "Carving a spoon: split a green birch log, rough out the spoon "
     "blank with an axe, hollow the bowl with a hook knife, finish the handle. A carved ladle project."),
    ("sharpening_carving_knives.pdf", "55.01", "How to sharpen carving knives and gouges: whetstone grits 1000 "
     "and 6000, hold the bevel flat, strop with honing compound, test the edge on end grain."),
    ("IMG_2024_restaurant_bill.jpg", "10.02", None),
    ("квитанція_за_газ_березень.txt", "10.02", "Квитанція за газопостачання за березень. Спожито 84 кубометри "
     "газу. До сплати 712 гривень за комунальні послуги. Оплатіть рахунок до 20 числа."),
    ("виписка_з_банківського_рахунку.docx", "10.01", "Виписка з банківського рахунку за травень. Залишок на "
     "початок місяця, надходження зарплати, оплата карткою, залишок на кінець місяця."),
    ("аналіз_крові.pdf", "15.01", "Результати аналізу крові. Гемоглобін 138 г/л, холестерин 5,1 ммоль/л, "
     "глюкоза 4,9. Лабораторне дослідження призначене лікарем."),
    ("бронювання_готелю_львів.html", "25.01", "<html><body><p>Підтвердження бронювання готелю у Львові: "
     "заїзд 12 червня, виїзд 15 червня, номер на двох, сніданок включено.</p></body></html>"),
    ("трудовий_договір.txt", "30.02", "Трудовий договір між роботодавцем і працівником. Посада: інженер. "
     "Заробітна плата, робочий час 40 годин на тиждень, випробувальний термін три місяці."),
    ("різьблення_ложки_з_липи.md", "55.02", "Різьблення ложки з липи: заготовка, вибирання черпака "
     "ножем-косяком, обробка ручки, шліфування. Мій новий проєкт з різьблення по дереву."),
    ("налоговая_декларация_2023.txt", "10.03", "Налоговая декларация о доходах за 2023 год. Налоговый вычет, "
     "сумма налога к возврату, подача в налоговую инспекцию."),
    ("рецепт_врача.md", "15.01", "Рецепт врача: амоксициллин 500 мг три раза в день, семь дней. "
     "Назначение после осмотра терапевтом, диагноз ангина."),
    ("ремонт_сантехники.docx", "20.02", "Акт выполненных работ: ремонт сантехники, замена труб в ванной, "
     "устранение протечки, замена смесителя. Работы выполнил сантехник."),
    ("виза_в_германию.pdf", "25.02", "Заявление на получение визы в Германию. Запись в консульство, "
     "загранпаспорт, приглашение, страховка на время поездки."),
    ("сертификат_курса.html", "35.01", "<html><body><h1>Сертификат</h1><p>Настоящим подтверждается, что "
     "слушатель успешно окончил онлайн-курс и получил сертификат об окончании обучения.</p></body></html>"),
    ("алерты_prometheus.txt", "45.05", "Настройка алертов Prometheus: правила оповещений, метрики, "
     "scrape config, дашборды мониторинга для кластера."),
    ("чек_из_ресторана.png", "10.02", None),
]


def _pdf(path: Path, text: str) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.add_font("DejaVu", fname=DEJAVU)
    pdf.set_font("DejaVu", size=11)
    pdf.multi_cell(0, 6, text)
    pdf.output(str(path))


def _docx(path: Path, text: str) -> None:
    import docx

    document = docx.Document()
    for sentence in text.split(". "):
        document.add_paragraph(sentence)
    document.save(str(path))


def write_corpus(folder: Path) -> dict[str, str]:
    """Write every document into `folder`; return {absolute path: expected level-2 code}."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for name, code, text in DOCUMENTS:
        path = folder / name
        if text is None:  # a photo: its bytes say nothing, its name does
            path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8)
        elif path.suffix == ".pdf":
            _pdf(path, text)
        elif path.suffix == ".docx":
            _docx(path, text)
        else:
            path.write_text(text, encoding="utf-8")
        labels[str(path)] = code
    return labels
